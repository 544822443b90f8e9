//! The `madoguchi` binary as a library: the server that hosts the
//! services ([`server`]), first-run credentials ([`credentials`]) and the
//! staff CLI ([`cli`]), and a stand-in for the cluster's edge proxy for
//! one machine ([`edge`]), and the check of a site directory
//! ([`site_check`]). Tests start the same server on port 0.

pub mod catalog_cli;
pub mod cli;
pub mod credentials;
pub mod edge;
pub mod identity_cli;
pub mod server;
pub mod site_check;
pub mod visit_cli;

/// Writes command output to stdout. A reader that went away (`madoguchi
/// queue status | head`) ends the command quietly, as other Unix tools do,
/// where `println!` would panic; any other write error ends it with status 1.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(error) = std::io::stdout().lock().write_fmt(args) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the output: {error}");
        std::process::exit(1);
    }
}

/// `println!` for command output, through [`write_out`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}
