//! How many HTTP connections may be open at once (`http_max_connections`).
//!
//! Every connection holds a file descriptor, and the process needs others for Redis, the CMPP
//! link, its listeners and logs. When idle connections take them all, `/healthz` stops answering
//! and the link cannot reconnect (EMFILE). So the cap stays well below the open-file limit: by
//! default a quarter of the limit (at least [`MIN_HEADROOM`]) stays free for the rest, and the
//! cap is at most [`DEFAULT_CEILING`]. A configured cap that leaves less than [`MIN_HEADROOM`]
//! is refused; one that leaves less than the default headroom is accepted with a warning.

/// Descriptors that must stay free for everything but HTTP connections.
pub const MIN_HEADROOM: u64 = 64;
/// The default cap never exceeds this: each connection may hold a body of `max_body_bytes`.
pub const DEFAULT_CEILING: u64 = 4096;
/// Connections the metrics listener may have open at once (a scraper needs one or two).
pub const METRICS_CONNECTIONS: u64 = 16;

/// The cap, and a warning when a configured cap leaves little room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCap {
    pub connections: u64,
    pub warning: Option<String>,
}

/// The soft open-file limit of this process; `None` when unlimited.
pub fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// `configured` checked against, or the default derived from, the open-file limit `limit`
/// (`None`: unlimited). `reserved` descriptors are taken elsewhere (the metrics listener's
/// connections). Errors are about `http_max_connections`, without the key.
pub fn resolve(
    configured: Option<u64>,
    reserved: u64,
    limit: Option<u64>,
) -> Result<ConnectionCap, String> {
    let Some(limit) = limit else {
        return Ok(ConnectionCap {
            connections: configured.unwrap_or(DEFAULT_CEILING),
            warning: None,
        });
    };
    // Free for Redis, the link and the rest; the metrics listener's `reserved` come on top.
    let advised_free = (limit / 4).max(MIN_HEADROOM);
    let advised_headroom = advised_free + reserved;
    let raise = "raise the open-file limit (ulimit -n, systemd LimitNOFILE=)";
    let Some(connections) = configured else {
        return match limit.checked_sub(advised_headroom) {
            Some(room) if room > 0 => Ok(ConnectionCap {
                connections: room.min(DEFAULT_CEILING),
                warning: None,
            }),
            _ => Err(format!(
                "not set, and the open-file limit ({limit}) leaves no descriptors for HTTP \
                 connections once {advised_headroom} are kept for Redis, the CMPP link and the \
                 rest: {raise}"
            )),
        };
    };
    let left = limit.saturating_sub(connections + reserved);
    if left < MIN_HEADROOM {
        return Err(format!(
            "{connections} connections would leave {left} of the {limit} open files for Redis, \
             the CMPP link and the rest (at least {MIN_HEADROOM} are needed): lower it or {raise}"
        ));
    }
    let warning = (left < advised_free).then(|| {
        format!(
            "{connections} connections leave only {left} of the {limit} open files for Redis, \
             the CMPP link and the rest; {advised_free} is advised"
        )
    });
    Ok(ConnectionCap {
        connections,
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_keeps_a_quarter_of_the_limit_free() {
        let cap = |limit| resolve(None, 0, Some(limit)).map(|c| c.connections);
        assert_eq!(cap(1024), Ok(768));
        assert_eq!(cap(256), Ok(192));
        assert_eq!(cap(100), Ok(36), "at least MIN_HEADROOM stays free");
        assert_eq!(cap(1_048_576), Ok(DEFAULT_CEILING));
        assert!(cap(64).unwrap_err().contains("raise the open-file limit"));
        assert_eq!(
            resolve(None, METRICS_CONNECTIONS, Some(1024)).map(|c| c.connections),
            Ok(768 - METRICS_CONNECTIONS)
        );
        assert_eq!(
            resolve(None, 0, None).map(|c| c.connections),
            Ok(DEFAULT_CEILING)
        );
    }

    #[test]
    fn a_configured_cap_must_leave_room() {
        let ok = resolve(Some(700), 0, Some(1024)).unwrap();
        assert_eq!((ok.connections, ok.warning), (700, None));
        let tight = resolve(Some(900), 0, Some(1024)).unwrap();
        assert_eq!(tight.connections, 900);
        assert!(
            tight
                .warning
                .unwrap()
                .contains("leave only 124 of the 1024"),
            "warned"
        );
        let refused = resolve(Some(1000), 0, Some(1024)).unwrap_err();
        assert!(refused.contains("would leave 24 of the 1024"), "{refused}");
        // The metrics listener's connections count neither as left nor as advised.
        let tight = resolve(Some(800), METRICS_CONNECTIONS, Some(1024)).unwrap();
        let warning = tight.warning.unwrap();
        assert!(
            warning.contains("leave only 208 of the 1024") && warning.ends_with("; 256 is advised"),
            "{warning}"
        );
        let ok = resolve(Some(752), METRICS_CONNECTIONS, Some(1024)).unwrap();
        assert_eq!((ok.connections, ok.warning), (752, None));
        let refused = resolve(Some(950), METRICS_CONNECTIONS, Some(1024)).unwrap_err();
        assert!(refused.contains("would leave 58"), "{refused}");
        assert_eq!(resolve(Some(50_000), 0, None).unwrap().connections, 50_000);
    }
}
