//! The web console in a real browser: the gateway in-process (API keys on, reports on) with the
//! simulator and a real redis-server, driven by `tests/browser/console.mjs` in headless
//! Chromium through playwright-core. Needs `apt-get install -y chromium nodejs npm` and
//! `npm ci --prefix tests/browser`; without them this test fails and says so.
//! Screenshots land in `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::gateway;
use crate::common::redis::connect;
use cmpp_gateway::simulator::{Behaviour, MoRequest};
use serde_json::json;

const API_KEY: &str = "browser-test-key";
const NUMBER: &str = "13800138123";
const MO_FROM: &str = "13500135999";
const INSTALL: &str =
    "install them with: apt-get install -y chromium nodejs npm && npm ci --prefix tests/browser";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails (never skips) when something the browser test needs is missing.
fn require_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "the console browser test needs node (nodejs); {INSTALL}"
    );
    assert!(
        chromium().exists(),
        "the console browser test needs Chromium at {} (or set CHROMIUM); {INSTALL}",
        chromium().display()
    );
    assert!(
        browser_dir()
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "the console browser test needs tests/browser/node_modules (playwright-core); {INSTALL}"
    );
}

fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; the screenshots go beside it.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("console-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_sends_finds_and_shows_a_delivered_message_safely() {
    require_tools();
    let behaviour = Behaviour {
        // Long enough to see the message submitted before it is delivered.
        report_delay: Duration::from_millis(1500),
        ..Behaviour::default()
    };
    let stack = gateway::stack(behaviour, json!({"api_keys": [API_KEY]})).await;

    // An MO and a dead letter for the other tabs, both with markup in their text.
    stack
        .sim
        .send_mo(MoRequest {
            from: MO_FROM.into(),
            to: "1064899104221".into(),
            text: "你好 <b>MO</b>".into(),
            ..MoRequest::default()
        })
        .expect("the simulator queues the MO");
    let _: String = redis::cmd("XADD")
        .arg("cmpp:mt")
        .arg("*")
        .arg(
            &[
                "id",
                "dead-one",
                "to",
                "12345",
                "text",
                "<img src=x onerror=\"window.__xss = 3\">",
            ][..],
        )
        .query_async(&mut connect(&stack.redis).await)
        .await
        .unwrap();

    let url = format!("http://{}/", stack.gw.http);
    let shots = screenshot_dir();
    let script = browser_dir().join("console.mjs");
    let output = tokio::task::spawn_blocking(move || {
        // The script stops itself after 150 s, so this wait is bounded.
        Command::new("node")
            .arg(script)
            .arg(url)
            .arg(&shots)
            .env("CONSOLE_API_KEY", API_KEY)
            .env("CONSOLE_NUMBER", NUMBER)
            .env("CONSOLE_MO_FROM", MO_FROM)
            .env("CHROMIUM", chromium())
            .output()
            .expect("node starts")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("console ok"),
        "the browser test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{stdout}");
    stack.gw.stop().await;
}
