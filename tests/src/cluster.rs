//! The cluster overlay's topology on one machine: every service its own
//! `madoguchi serve --service X` process (two queue replicas), each
//! connecting to one PostgreSQL database as its own role that owns only its
//! own schema — as `k8s/overlays/cluster/` runs them — and an edge that
//! routes gRPC by service name to ready replicas, as the cluster's Gateway
//! API route does for the floor gateways and staff terminals.
//!
//! The processes are the binary CI builds (`target/<profile>/madoguchi`,
//! beside this test's own executable), with a cleared environment and only
//! the settings a Deployment gives them. Their logs go to files in the
//! cluster's directory, printed when a start fails.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use madoguchi_platform::auth::Role;
use sea_orm::{ConnectionTrait, Database};
use secrecy::ExposeSecret;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::transport::Channel;

use crate::{OTHER_MUNICIPALITY, test_tokens};

/// The services a cluster runs as Deployments, with their database schema
/// (`None`: signage has no database).
pub const SERVICES: [(&str, Option<&str>); 5] = [
    ("queue", Some("queue")),
    ("identity", Some("identity")),
    ("forms", Some("forms")),
    ("pos", Some("pos")),
    ("signage", None),
];

/// The My Number key every identity replica shares (test value).
const IDENTITY_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// The status-URL secret every signage replica shares (test value).
const SIGNAGE_SECRET: &str = "cluster-test-signage-secret-shared-by-replicas";

/// The `madoguchi` binary of this build: `target/<profile>/madoguchi`,
/// next to the `deps/` directory this test runs from. `cargo test
/// --workspace` builds it before any test runs.
pub fn madoguchi_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("madoguchi"))
        .unwrap_or_else(|| panic!("no target directory above {}", exe.display()));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p madoguchi` (scripts/test.sh builds it)",
        bin.display()
    );
    bin
}

/// One service process.
#[derive(Debug)]
pub struct Process {
    /// `queue-1`, `identity`, …
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    service: String,
    env: Vec<(String, String)>,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Sends SIGTERM: the server stops accepting, reports NOT_SERVING,
    /// ends its streams and finishes in-flight requests (as Kubernetes
    /// does to a pod it removes).
    pub async fn terminate(&self) {
        let pid = self
            .child
            .id()
            .unwrap_or_else(|| panic!("{} already exited", self.name));
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the process to exit; its status.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within 30 s", self.name))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Its resident set now and at its peak (`VmRSS`, `VmHWM` from
    /// `/proc`), in KiB; `None` once it exited.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time it has used (user + system), in seconds (`/proc/<pid>/stat`
    /// counts in ticks of 1/100 s on Linux); `None` once it exited.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()?)).ok()?;
        // The fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        Some((user + system) / 100.0)
    }

    /// What the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The database side: one database, one role per service owning the
/// schema of the same name, `public` closed to everyone.
#[derive(Debug)]
struct ClusterDatabase {
    admin_url: String,
    database: String,
    /// Service → its role's URL.
    urls: HashMap<&'static str, String>,
    roles: Vec<String>,
}

impl ClusterDatabase {
    async fn create() -> Self {
        let admin_url = crate::fresh_postgres_database().await;
        let (server, database) = admin_url
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("unexpected test database url"));
        let database = database.to_owned();
        let (_, host) = server
            .rsplit_once('@')
            .unwrap_or_else(|| panic!("unexpected test database url"));
        let db = Database::connect(admin_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // Roles are global to the PostgreSQL server: a run's roles carry
        // its database's unique suffix (scripts/postgres.sh drops leftovers).
        let suffix = database.trim_start_matches("madoguchi_test_");
        let mut urls = HashMap::new();
        let mut roles = Vec::new();
        let mut sql = vec!["REVOKE ALL ON SCHEMA public FROM PUBLIC".to_owned()];
        for (service, schema) in SERVICES {
            let Some(schema) = schema else { continue };
            let role = format!("mdg_test_{suffix}_{service}");
            let password = uuid::Uuid::new_v4().simple().to_string();
            sql.push(format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"));
            // Membership lets this admin create the schema on the role's
            // behalf (PostgreSQL 15 asks for it); the role itself gets
            // nothing but its schema.
            sql.push(format!("GRANT {role} TO CURRENT_USER"));
            sql.push(format!("CREATE SCHEMA {schema} AUTHORIZATION {role}"));
            sql.push(format!(
                "ALTER ROLE {role} IN DATABASE {database} SET search_path = {schema}"
            ));
            urls.insert(
                service,
                format!("postgres://{role}:{password}@{host}/{database}"),
            );
            roles.push(role);
        }
        for statement in sql {
            db.execute_unprepared(&statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        Self {
            admin_url,
            database,
            urls,
            roles,
        }
    }

    /// Drops the database and the roles (best effort: leftovers are
    /// dropped by `scripts/postgres.sh --drop-test-databases`).
    async fn drop_all(&self) {
        let Some((server, _)) = self.admin_url.rsplit_once('/') else {
            return;
        };
        let Ok(db) = Database::connect(format!("{server}/postgres")).await else {
            return;
        };
        let _ = db
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .await;
        for role in &self.roles {
            let _ = db
                .execute_unprepared(&format!("DROP ROLE IF EXISTS {role}"))
                .await;
        }
    }
}

/// The whole topology, running.
#[derive(Debug)]
pub struct Cluster {
    /// The queue replicas.
    pub queue: Vec<Process>,
    /// identity, forms, pos, signage.
    pub others: HashMap<&'static str, Process>,
    /// The edge every client outside the cluster goes through.
    pub edge: madoguchi::edge::Edge,
    database: ClusterDatabase,
    dir: TempDir,
}

/// A `[[tokens]]` file with the test tokens (every role in 大船渡市 and an
/// admin of another municipality), as the credentials Secret holds them.
fn credentials_file(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for t in test_tokens() {
        text.push_str(&format!(
            "[[tokens]]\ntoken = \"{}\"\nsubject = \"{}\"\nrole = \"{}\"\nmunicipality = \"{}\"\n\n",
            t.token.expose_secret(),
            t.subject,
            t.role,
            t.municipality
        ));
    }
    let path = dir.join("credentials.toml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// `ipv4:a,b` of the replicas: how the in-cluster clients reach a headless
/// Service's pods, here with fixed addresses.
pub fn target_of(processes: &[&Process]) -> String {
    let addrs: Vec<String> = processes.iter().map(|p| p.addr.to_string()).collect();
    format!("ipv4:{}", addrs.join(","))
}

impl Cluster {
    /// Starts queue ×2, identity, forms, pos and signage in dependency
    /// order (each peer URL must be known when its client starts), and the
    /// edge in front of them.
    pub async fn start() -> Self {
        let mut dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        if std::env::var_os("MADOGUCHI_TEST_KEEP").is_some() {
            // Logs and data kept for a failing run's post-mortem.
            eprintln!("cluster files kept in {}", dir.path().display());
            dir.disable_cleanup(true);
        }
        let database = ClusterDatabase::create().await;
        let credentials = credentials_file(dir.path());
        let site = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sites/ofunato/site.toml");
        let common = |name: &str| -> Vec<(String, String)> {
            vec![
                ("MADOGUCHI_SITE".into(), site.display().to_string()),
                (
                    "MADOGUCHI_CREDENTIALS_FILE".into(),
                    credentials.display().to_string(),
                ),
                (
                    "MADOGUCHI_DATA_DIR".into(),
                    dir.path().join(name).display().to_string(),
                ),
                ("MADOGUCHI_LISTEN".into(), "127.0.0.1:0".into()),
                // As in k8s/: clients' health checks see NOT_SERVING (1 s
                // apart) before the replica stops taking requests.
                ("MADOGUCHI_DRAIN_DELAY_MS".into(), "2500".into()),
                (
                    "MADOGUCHI_LOG".into(),
                    std::env::var("MADOGUCHI_TEST_CLUSTER_LOG").unwrap_or_else(|_| "warn".into()),
                ),
            ]
        };
        let db_of = |service: &str| -> (String, String) {
            (
                "MADOGUCHI_DATABASE_URL".into(),
                database.urls[service].clone(),
            )
        };

        let mut queue = Vec::new();
        for replica in 1..=2 {
            let name = format!("queue-{replica}");
            let mut env = common(&name);
            env.push(db_of("queue"));
            queue.push(spawn_process(&name, "queue", env, dir.path()).await);
        }
        let queue_target = target_of(&queue.iter().collect::<Vec<_>>());

        let mut others = HashMap::new();
        let mut env = common("identity");
        env.push(db_of("identity"));
        env.push(("MADOGUCHI_IDENTITY_KEY".into(), IDENTITY_KEY.into()));
        let identity = spawn_process("identity", "identity", env, dir.path()).await;

        let mut env = common("forms");
        env.push(db_of("forms"));
        env.push((
            "MADOGUCHI_FORMS_IDENTITY_URL".into(),
            format!("http://{}", identity.addr),
        ));
        env.push(("MADOGUCHI_FORMS_QUEUE_URL".into(), queue_target.clone()));
        let forms = spawn_process("forms", "forms", env, dir.path()).await;

        let mut env = common("pos");
        env.push(db_of("pos"));
        env.push((
            "MADOGUCHI_POS_FORMS_URL".into(),
            format!("http://{}", forms.addr),
        ));
        let pos = spawn_process("pos", "pos", env, dir.path()).await;

        let mut env = common("signage");
        env.push(("MADOGUCHI_SIGNAGE_QUEUE_URL".into(), queue_target.clone()));
        env.push(("MADOGUCHI_SIGNAGE_SECRET".into(), SIGNAGE_SECRET.into()));
        env.push((
            "MADOGUCHI_PUBLIC_URL".into(),
            "https://madoguchi.city.ofunato.example".into(),
        ));
        let signage = spawn_process("signage", "signage", env, dir.path()).await;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let at = |p: &Process| format!("http://{}", p.addr);
        let edge = madoguchi::edge::Edge::start(
            listener,
            [
                ("/madoguchi.queue.v1.QueueService/", queue_target),
                ("/madoguchi.identity.v1.IdentityService/", at(&identity)),
                ("/madoguchi.forms.v1.FormsService/", at(&forms)),
                ("/madoguchi.pos.v1.PosService/", at(&pos)),
                ("/madoguchi.signage.v1.SignageService/", at(&signage)),
                ("/signage/", at(&signage)),
            ]
            .into_iter()
            .map(|(prefix, target)| (prefix.to_owned(), target))
            .collect(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        others.insert("identity", identity);
        others.insert("forms", forms);
        others.insert("pos", pos);
        others.insert("signage", signage);
        Self {
            queue,
            others,
            edge,
            database,
            dir,
        }
    }

    /// Starts queue replica `index` again, after it exited, on the address
    /// it had (the peers' fixed lists name it): a rolling update's new pod.
    pub async fn restart_queue(&mut self, index: usize) {
        let old = &self.queue[index];
        assert!(
            old.child.id().is_none(),
            "{} is still running: terminate it and wait for its exit first",
            old.name
        );
        let mut env = old.env.clone();
        for (name, value) in &mut env {
            if name == "MADOGUCHI_LISTEN" {
                *value = old.addr.to_string();
            }
        }
        let name = old.name.clone();
        let service = old.service.clone();
        self.queue[index] = spawn_process(&name, &service, env, self.dir.path()).await;
    }

    /// The process of `service` (not the queue).
    pub fn process(&self, service: &str) -> &Process {
        &self.others[service]
    }

    /// A channel through the edge.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.edge.addr))
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A queue client through the edge, holding `role` in 大船渡市.
    pub async fn queue_client(&self, role: Role) -> crate::Client {
        crate::client_at(self.edge.addr, role, "032034").await
    }

    /// A queue client through the edge of another municipality's admin.
    pub async fn foreign_client(&self) -> crate::Client {
        crate::client_at(self.edge.addr, Role::Admin, OTHER_MUNICIPALITY).await
    }

    /// The role URL of `service`'s database, for checks of least privilege.
    pub fn database_url(&self, service: &str) -> &str {
        &self.database.urls[service]
    }

    /// Every process: the queue replicas, then the others by name.
    pub fn processes(&self) -> Vec<&Process> {
        let mut others: Vec<&Process> = self.others.values().collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        self.queue.iter().chain(others).collect()
    }

    /// Every process's log, for a failing test's message.
    pub fn logs(&self) -> String {
        self.queue
            .iter()
            .chain(self.others.values())
            .map(|p| format!("--- {}\n{}", p.name, p.log()))
            .collect()
    }

    /// Stops every process (SIGTERM, then waits) and drops the database
    /// and its roles.
    pub async fn stop(mut self) {
        for p in self.queue.iter().chain(self.others.values()) {
            if p.child.id().is_some() {
                p.terminate().await;
            }
        }
        for p in self.queue.iter_mut().chain(self.others.values_mut()) {
            p.exited().await;
        }
        self.database.drop_all().await;
        drop(self.dir);
    }
}

async fn spawn_process(
    name: &str,
    service: &str,
    env: Vec<(String, String)>,
    dir: &Path,
) -> Process {
    let log = dir.join(format!("{name}.log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(madoguchi_binary())
        .args(["serve", "--service", service])
        .env_clear()
        .envs(env.iter().cloned())
        .env("MADOGUCHI_ADMIN_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child
        .stdout
        .take()
        .unwrap_or_else(|| panic!("no stdout of {name}"));
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.parse::<SocketAddr>().ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(addr) = addr else {
        panic!(
            "{name} did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    // Keep reading stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Process {
        name: name.to_owned(),
        addr,
        service: service.to_owned(),
        env,
        child,
        log,
    }
}

/// Outcome of one [`caller`]'s work under load.
#[derive(Debug, Default)]
pub struct Called {
    /// Ticket name → how many calls returned it.
    pub tickets: std::collections::BTreeMap<String, u32>,
    /// Calls retried after the edge or a draining replica refused them.
    pub retries: u32,
}

/// A status a client retries (with the same request id): the edge or a
/// draining replica refused, or the connection broke.
pub fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::Internal
    )
}

/// Issues, calls and finishes tickets of `category_id` at `counter_id`
/// until `stop`, retrying each step that the cluster refused with the same
/// request id (so a retry of a step that happened returns its result).
pub async fn caller(
    mut staff: crate::Client,
    category_id: &'static str,
    counter_id: &'static str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Called {
    let mut called = Called::default();
    while !*stop.borrow() {
        let issue = madoguchi_proto::queue::v1::IssueTicketRequest {
            parent: crate::OFFICE.into(),
            category: crate::category(category_id),
            priority: false,
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        loop {
            match staff.issue_ticket(issue.clone()).await {
                Ok(_) => break,
                Err(status) if transient(&status) => called.retries += 1,
                Err(status) => panic!("issue: {status}"),
            }
        }
        let call = madoguchi_proto::queue::v1::CallNextRequest {
            counter: crate::counter(counter_id),
            categories: Vec::new(),
            request_id: uuid::Uuid::new_v4().to_string(),
        };
        let ticket = loop {
            match staff.call_next(call.clone()).await {
                Ok(r) => {
                    break r
                        .into_inner()
                        .ticket
                        .unwrap_or_else(|| panic!("the ticket just issued was not called"));
                }
                Err(status) if transient(&status) => called.retries += 1,
                Err(status) => panic!("call: {status}"),
            }
        };
        *called.tickets.entry(ticket.name.clone()).or_default() += 1;
        loop {
            let finish = madoguchi_proto::queue::v1::FinishServiceRequest {
                name: ticket.name.clone(),
                etag: String::new(),
            };
            match staff.finish_service(finish).await {
                Ok(_) => break,
                Err(status) if transient(&status) => called.retries += 1,
                // A retried finish that had happened: the ticket is done.
                Err(status) if status.code() == tonic::Code::FailedPrecondition => break,
                Err(status) => panic!("finish: {status}"),
            }
        }
    }
    called
}
