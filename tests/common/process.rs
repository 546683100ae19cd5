//! `cmpp-gateway run` as a real process, for tests that kill, stop or run several of them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// One gateway process, started with `config` written to `dir/name.json`; SIGKILLed (after a
/// SIGCONT, in case it was stopped) when dropped.
pub struct GatewayProcess {
    child: Child,
}

impl GatewayProcess {
    pub fn spawn(dir: &Path, name: &str, config: &serde_json::Value) -> GatewayProcess {
        let path: PathBuf = dir.join(format!("{name}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_cmpp-gateway"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gateway binary starts");
        GatewayProcess { child }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory of its own under the system's temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "cmpp-gateway-{test}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
