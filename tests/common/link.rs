//! One link against the built-in simulator, without the gateway around it: a config with short
//! timers, the link spawned with an event recorder, and a one-recipient SUBMIT.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cmpp_gateway::protocol::Submit;
use cmpp_gateway::secret::Secret;
use cmpp_gateway::session::{Link, LinkConfig, LinkEvent, LinkObserver, LinkParts};
use cmpp_gateway::simulator::SimulatorHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Collects every event with the time it happened.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<(Instant, LinkEvent)>>);

impl LinkObserver for Recorder {
    fn on_event(&self, event: &LinkEvent) {
        self.0.lock().unwrap().push((Instant::now(), event.clone()));
    }
}

impl Recorder {
    pub fn count(&self, f: impl Fn(&LinkEvent) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|(_, e)| f(e)).count()
    }

    /// Every event so far, in order.
    pub fn all(&self) -> Vec<LinkEvent> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub fn times(&self, f: impl Fn(&LinkEvent) -> bool) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(t, _)| *t)
            .collect()
    }
}

pub fn config(sim: &SimulatorHandle) -> LinkConfig {
    let mut c = LinkConfig::new(sim.addr().to_string(), "900001", Secret::new("888888"));
    c.response_timeout = Duration::from_millis(500);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(300);
    c.close_timeout = Duration::from_secs(2);
    c
}

pub struct Running {
    pub parts: LinkParts,
    pub events: Arc<Recorder>,
}

impl Running {
    pub fn link(&self) -> &Link {
        &self.parts.link
    }

    pub async fn close(self) {
        self.parts.link.close();
        tokio::time::timeout(Duration::from_secs(10), self.parts.task)
            .await
            .expect("link closes within 10 s")
            .expect("link task does not panic");
    }
}

pub fn spawn(config: LinkConfig) -> Running {
    let events = Arc::new(Recorder::default());
    let parts = Link::spawn(config, Some(events.clone()), CancellationToken::new());
    Running { parts, events }
}

pub async fn spawn_up(config: LinkConfig) -> Running {
    let running = spawn(config);
    let up = tokio::time::timeout(Duration::from_secs(10), running.link().wait_up()).await;
    assert_eq!(
        up,
        Ok(true),
        "link did not come up: {:?}",
        running.link().status()
    );
    running
}

pub fn submit(n: u32) -> Submit {
    Submit {
        pk_total: 1,
        pk_number: 1,
        msg_src: "900001".into(),
        src_id: "1064899104221".into(),
        dest_terminal_ids: vec![format!("138{n:08}")],
        msg_content: format!("message {n}").into_bytes(),
        ..Submit::default()
    }
}
