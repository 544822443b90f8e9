//! Log output. Filter with `MADOGUCHI_LOG` (e.g. `info,madoguchi_queue=debug`);
//! the default is `info`. Logs never carry request bodies or statements.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("MADOGUCHI_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
