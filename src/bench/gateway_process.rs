//! A gateway as a process of its own (`<exe> run --config <file>`), for benchmarks that need
//! several instances to compete for leases as separately deployed ones do. Its log goes to a file
//! beside its config, quoted when the run fails. Dropped, it is killed by its PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// Lines of a gateway's log quoted in an error.
const LOG_TAIL_LINES: usize = 20;

pub struct GatewayProcess {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl GatewayProcess {
    /// Writes `config` to `dir/<name>.json` and starts `exe run --config` on it. Logs at `warn`
    /// unless RUST_LOG says otherwise (info lines would cost CPU the benchmark measures).
    pub fn spawn(
        exe: &Path,
        dir: &Path,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<GatewayProcess, String> {
        let config_path = dir.join(format!("{name}.json"));
        std::fs::write(&config_path, config.to_string())
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        let log = dir.join(format!("{name}.log"));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut command = Command::new(exe);
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "warn");
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        Ok(GatewayProcess {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error (with the end of its log) once the process has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "gateway {} exited ({status}); its log ends with:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("gateway {}: {e}", self.name)),
        }
    }

    /// SIGTERM, then up to `grace` for the graceful shutdown (leases released, in-flight
    /// answered), then SIGKILL. Returns whether it ended by itself.
    pub async fn stop(mut self, grace: Duration) -> bool {
        let pid = rustix::process::Pid::from_child(&self.child);
        if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_err() {
            return false;
        }
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false // Drop kills it.
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
