//! The link's background task: log in, serve the connection, and when it ends reconnect with
//! back-off, until shutdown. It owns everything that must survive a reconnect.

use std::time::SystemTime;

use tokio::sync::watch;

use super::backoff::Reconnects;
use super::connection::{Connection, Shared};
use super::error::SubmitError;
use super::events::{DisconnectReason, LinkEvent, LinkState};
use super::login::login;

/// The link's state as the outside sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    pub state: LinkState,
    pub since: SystemTime,
    /// Why it is in this state, for people.
    pub reason: String,
}

impl LinkStatus {
    pub(crate) fn new(state: LinkState, reason: impl Into<String>) -> LinkStatus {
        LinkStatus {
            state,
            since: SystemTime::now(),
            reason: reason.into(),
        }
    }
}

pub(crate) async fn run(mut shared: Shared, status: watch::Sender<LinkStatus>) {
    let set_state = |shared: &Shared, state: LinkState, reason: String| {
        match state {
            LinkState::Down => {
                tracing::warn!(link = %shared.config.addr, state = %state.as_str(), %reason, "link state")
            }
            _ => {
                tracing::info!(link = %shared.config.addr, state = %state.as_str(), %reason, "link state")
            }
        }
        shared.events.emit(LinkEvent::StateChanged { state });
        status.send_replace(LinkStatus::new(state, reason));
    };
    let mut reconnects = Reconnects::default();
    loop {
        if shared.shutdown.is_cancelled() {
            break;
        }
        // Logging in on a slot whose lease has ended would make one connection too many.
        if shared.config.fence.as_ref().is_some_and(|f| !f.is_open()) {
            tracing::warn!(link = %shared.config.addr, "the connection slot's lease has ended; not connecting");
            shared.shutdown.cancelled().await;
            break;
        }
        set_state(
            &shared,
            LinkState::Connecting,
            format!("connecting to {}", shared.config.addr),
        );
        let sequence_id = shared.sequence.next(|_| false);
        let events = shared.events.clone();
        let emit = |e| events.emit(e);
        let attempt = tokio::select! {
            result = login(&shared.config, sequence_id, &emit) => result,
            () = shared.shutdown.cancelled() => break,
        };
        // A login can take connect_timeout and T: the lease may have ended meanwhile.
        if attempt.is_ok() && shared.config.fence.as_ref().is_some_and(|f| !f.is_open()) {
            drop(attempt);
            tracing::warn!(link = %shared.config.addr, "the connection slot's lease ended during the login; closing");
            set_state(
                &shared,
                LinkState::Down,
                "lease lost during the login".into(),
            );
            shared.shutdown.cancelled().await;
            break;
        }
        let delay = match attempt {
            Ok(transport) => {
                shared.connection_id += 1;
                set_state(&shared, LinkState::Up, "logged in".into());
                let up_since = tokio::time::Instant::now();
                let reason = Connection::new(&mut shared, transport).run().await;
                shared.events.emit(LinkEvent::Disconnected { reason });
                if reason == DisconnectReason::Shutdown {
                    break;
                }
                if reason == DisconnectReason::LeaseLost {
                    tracing::warn!(link = %shared.config.addr, "the connection slot's lease ended; the link stops sending on it");
                    set_state(&shared, LinkState::Down, "lease lost".into());
                    shared.shutdown.cancelled().await;
                    break;
                }
                set_state(
                    &shared,
                    LinkState::Down,
                    format!("connection ended: {}", reason.as_str()),
                );
                reconnects.after_connection(&shared.config, up_since.elapsed())
            }
            Err(e) => {
                set_state(&shared, LinkState::Down, format!("login failed: {e}"));
                reconnects.after_login_failure(&shared.config, e.is_auth_failure())
            }
        };
        tracing::debug!(?delay, "reconnecting after");
        shared.events.emit(LinkEvent::ReconnectScheduled { delay });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.shutdown.cancelled() => break,
        }
    }
    // Closed for good: whatever is still queued or left by the last connection goes back.
    shared.give_back_lost();
    shared.commands.close();
    while let Some(pending) = shared.commands.recv().await {
        pending.finish(Err(SubmitError::Closed));
    }
    set_state(&shared, LinkState::Closed, "closed".into());
}
