//! Reading for the console, newest first: pages of messages (an index, then each message's
//! state hash) and pages of the inbound and dead-letter streams
//! (XREVRANGE, or a per-number index when searching by number). Every page is a few pipelined
//! round trips, whatever the size of the streams.

use serde::Serialize;
use serde_json::{Map, Value};

use super::index::IndexCursor;
use super::outbound_entry::raw_entry;
use super::state::{MessageStatus, MessageSummary, SUMMARY_FIELDS};
use super::{Batch, Store, StoreError};

/// A status search reads the index this many members at a time, and at most
/// [`SCAN_BUDGET`] per request (then `next_cursor` continues the scan), so a rare status
/// costs a bounded amount of Redis work per click.
const SCAN_CHUNK: usize = 200;
pub const SCAN_BUDGET: usize = 2_000;

/// The state fields a list row shows beyond the summary's, read after them (see
/// [`MessageRow::from_fields`]).
const ROW_EXTRA_FIELDS: [&str; 4] = ["segments", "text", "hex", "coding"];

/// One page of a list. `next_cursor` is `None` on the last page.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A message as the console lists it: its summary and what was sent.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    #[serde(flatten)]
    pub summary: MessageSummary,
    /// Known once a worker has taken the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<u32>,
    /// The message's `text`, or `hex` (with `coding`) for content given as bytes, as the state
    /// keeps it (the outbound entry is trimmed once sent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coding: Option<String>,
}

impl MessageRow {
    /// The fields to HMGET, in the order [`MessageRow::from_fields`] reads them.
    fn fields() -> impl Iterator<Item = &'static str> {
        SUMMARY_FIELDS.into_iter().chain(ROW_EXTRA_FIELDS)
    }

    /// From the values of [`MessageRow::fields`]; `None` when the hash has no status (expired).
    fn from_fields(values: &[Option<String>]) -> Option<MessageRow> {
        let get = |name: &str| {
            let i = MessageRow::fields().position(|f| f == name)?;
            values.get(i).cloned().flatten().filter(|v| !v.is_empty())
        };
        Some(MessageRow {
            summary: MessageSummary::read(get)?,
            segments: get("segments")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|n| n.min(255) as u32),
            text: get("text"),
            hex: get("hex"),
            coding: get("coding"),
        })
    }
}

/// What to list. With `id` the answer is that message or nothing; `to` and `status` narrow.
#[derive(Debug, Clone, Default)]
pub struct MessageQuery {
    pub id: Option<String>,
    /// Normalized (as the state stores it).
    pub to: Option<String>,
    pub status: Option<MessageStatus>,
}

impl MessageQuery {
    fn admits(&self, row: &MessageRow) -> bool {
        let row = &row.summary;
        self.status.is_none_or(|s| s == row.status) && self.to.as_ref().is_none_or(|t| *t == row.to)
    }
}

/// One stream entry, its fields in stream order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamEntry {
    pub entry_id: String,
    pub fields: Map<String, Value>,
}

/// Whether `text` is a stream entry id (`1700000000000-0`, or just the milliseconds).
pub fn is_stream_id(text: &str) -> bool {
    let mut parts = text.splitn(2, '-');
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    parts.next().is_some_and(digits) && parts.next().is_none_or(digits)
}

impl Store {
    /// Messages newest first (by enqueue time), from the recent index or the recipient's.
    pub async fn message_page(
        &self,
        query: &MessageQuery,
        cursor: Option<&IndexCursor>,
        limit: usize,
    ) -> Result<Page<MessageRow>, StoreError> {
        let page = if let Some(id) = &query.id {
            let rows = self.message_rows(std::slice::from_ref(id)).await?;
            Page {
                items: rows
                    .into_iter()
                    .flatten()
                    .filter(|r| query.admits(r))
                    .collect(),
                next_cursor: None,
            }
        } else {
            let index = match &query.to {
                Some(to) => self.keys.message_index_by_to(to),
                None => self.keys.message_index(),
            };
            let chunk = if query.status.is_some() {
                SCAN_CHUNK
            } else {
                limit + 1
            };
            let mut scan = Scan::new(cursor, limit, chunk);
            loop {
                let members = self.index_page(&index, scan.at(), chunk).await?;
                let ids: Vec<String> = members.iter().map(|m| m.member.clone()).collect();
                let rows = self.message_rows(&ids).await?;
                let admitted = rows.into_iter().map(|r| r.filter(|r| query.admits(r)));
                if let Some(page) = scan.take(members, admitted.collect()) {
                    break page;
                }
            }
        };
        Ok(page)
    }

    /// The list fields of each message's state, in one round trip.
    async fn message_rows(&self, ids: &[String]) -> Result<Vec<Option<MessageRow>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = Batch::new();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.keys.state(id))
                .arg(MessageRow::fields().collect::<Vec<_>>());
        }
        let values: Vec<Vec<Option<String>>> = self.query_pipeline(&pipe).await?;
        Ok(values
            .iter()
            .zip(ids)
            .map(|(v, id)| {
                // The state of an entry dead-lettered by an older version may lack its id.
                MessageRow::from_fields(v).map(|mut row| {
                    if row.summary.id.is_empty() {
                        row.summary.id = id.clone();
                    }
                    row
                })
            })
            .collect())
    }

    /// How many entries `stream` holds (0 when it does not exist).
    pub async fn stream_len(&self, stream: &str) -> Result<u64, StoreError> {
        Ok(redis::cmd("XLEN")
            .arg(stream)
            .query_async(&mut self.conn())
            .await?)
    }

    /// The entries of several streams together (every channel's dead letters).
    pub async fn streams_len(&self, streams: &[String]) -> Result<u64, StoreError> {
        let mut pipe = Batch::new();
        for stream in streams {
            pipe.cmd("XLEN").arg(stream);
        }
        let lengths: Vec<u64> = self.query_pipeline(&pipe).await?;
        Ok(lengths.iter().sum())
    }

    /// A stream's entries before `before` (an entry id; `None` = from the newest).
    pub async fn stream_page(
        &self,
        stream: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Page<StreamEntry>, StoreError> {
        let end = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
        let reply: redis::Value = redis::cmd("XREVRANGE")
            .arg(stream)
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut self.conn())
            .await?;
        let mut items = parse_entries(reply)?;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|e| e.entry_id.clone())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// The entries of `stream` listed in a per-number `index`; entries the stream has trimmed
    /// (MAXLEN) are skipped.
    pub async fn indexed_stream_page(
        &self,
        stream: &str,
        index: &str,
        cursor: Option<&IndexCursor>,
        limit: usize,
    ) -> Result<Page<StreamEntry>, StoreError> {
        let mut scan = Scan::new(cursor, limit, limit + 1);
        loop {
            let members = self.index_page(index, scan.at(), limit + 1).await?;
            let mut pipe = Batch::new();
            for m in &members {
                pipe.cmd("XRANGE").arg(stream).arg(&m.member).arg(&m.member);
            }
            let replies: Vec<redis::Value> = if members.is_empty() {
                Vec::new()
            } else {
                self.query_pipeline(&pipe).await?
            };
            let entries = replies
                .into_iter()
                .map(|r| Ok(parse_entries(r)?.into_iter().next()))
                .collect::<Result<_, StoreError>>()?;
            if let Some(mut page) = scan.take(members, entries) {
                // The index orders entries of one millisecond by id as text (…-10 before
                // …-9); within the page, put them in stream order.
                page.items
                    .sort_by_key(|e| std::cmp::Reverse(entry_order(&e.entry_id)));
                return Ok(page);
            }
        }
    }
}

/// A walk through an index after a cursor, chunk by chunk, keeping the members that resolve to
/// an item, until `limit` items, the end of the index or [`SCAN_BUDGET`] members read.
struct Scan<T> {
    limit: usize,
    chunk: usize,
    /// The last member read.
    at: Option<IndexCursor>,
    items: Vec<(IndexCursor, T)>,
    scanned: usize,
}

impl<T> Scan<T> {
    fn new(cursor: Option<&IndexCursor>, limit: usize, chunk: usize) -> Scan<T> {
        Scan {
            limit,
            chunk,
            at: cursor.cloned(),
            items: Vec::new(),
            scanned: 0,
        }
    }

    /// Where the next chunk starts.
    fn at(&self) -> Option<&IndexCursor> {
        self.at.as_ref()
    }

    /// One chunk's members (as read, at most `chunk`) and what each resolved to (`None` =
    /// skip); the page once it is complete.
    fn take(&mut self, members: Vec<IndexCursor>, resolved: Vec<Option<T>>) -> Option<Page<T>> {
        let exhausted = members.len() < self.chunk;
        for (member, item) in members.into_iter().zip(resolved) {
            if let Some(item) = item {
                if self.items.len() == self.limit {
                    // One more exists: the page ends at its last item.
                    let next = self.items.last().map(|(c, _)| c.to_string());
                    return Some(self.page(next));
                }
                self.items.push((member.clone(), item));
            }
            self.at = Some(member);
            self.scanned += 1;
        }
        if exhausted {
            return Some(self.page(None));
        }
        // Out of budget: the next request continues from the last member read.
        (self.scanned >= SCAN_BUDGET).then(|| {
            let next = self.at.as_ref().map(IndexCursor::to_string);
            self.page(next)
        })
    }

    fn page(&mut self, next_cursor: Option<String>) -> Page<T> {
        Page {
            items: std::mem::take(&mut self.items)
                .into_iter()
                .map(|(_, t)| t)
                .collect(),
            next_cursor,
        }
    }
}

/// XRANGE / XREVRANGE replies: `[[id, [field, value, …]], …]`. Values are taken as text,
/// lossily: an application may have XADDed anything, and one odd entry must not break a page.
fn parse_entries(reply: redis::Value) -> Result<Vec<StreamEntry>, StoreError> {
    const WHAT: &str = "stream range";
    let redis::Value::Array(entries) = reply else {
        return Err(StoreError::Unexpected(format!("{WHAT} reply")));
    };
    entries
        .iter()
        .map(|entry| {
            let (entry_id, raw) = raw_entry(entry, WHAT)?;
            let mut fields = Map::new();
            for (k, v) in raw {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                fields.insert(text(k), text(v).into());
            }
            Ok(StreamEntry { entry_id, fields })
        })
        .collect()
}

/// An entry id as (milliseconds, sequence), for sorting.
fn entry_order(entry_id: &str) -> (u64, u64) {
    let (ms, seq) = entry_id.split_once('-').unwrap_or((entry_id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_submitted_like_the_state_view() {
        let hash: std::collections::HashMap<&str, &str> = [
            ("id", "m1"),
            ("to", "13800138000"),
            ("status", "submitting"),
            ("submitted_at", "6"),
            ("segments", "2"),
            ("queued_at", "5"),
            ("updated_at", "6"),
            ("stream_id", "1-0"),
            ("error", ""),
        ]
        .into_iter()
        .collect();
        // What HMGET answers: the values in `fields()` order, None for the missing ones.
        let values: Vec<Option<String>> = MessageRow::fields()
            .map(|f| hash.get(f).map(|v| v.to_string()))
            .collect();
        let row = MessageRow::from_fields(&values).unwrap();
        assert_eq!(row.summary.status, MessageStatus::Submitted);
        assert_eq!((row.segments, row.summary.queued_at), (Some(2), Some(5)));
        assert_eq!(row.summary.error, None, "empty is absent");
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["id"], "m1", "the summary is flattened into the row");
        assert_eq!(json["status"], "submitted");
        assert_eq!(json["segments"], 2);
        assert!(MessageRow::from_fields(&vec![None; 13]).is_none());
    }

    fn members(range: std::ops::Range<u64>) -> Vec<IndexCursor> {
        range
            .rev()
            .map(|n| IndexCursor {
                score: n,
                member: format!("m{n}"),
            })
            .collect()
    }

    #[test]
    fn a_scan_ends_at_its_last_item_when_more_exist() {
        let mut scan = Scan::new(None, 2, 3);
        let chunk = members(7..10);
        let page = scan.take(chunk, vec![Some(9), Some(8), Some(7)]).unwrap();
        assert_eq!(page.items, [9, 8]);
        assert_eq!(page.next_cursor.as_deref(), Some("8:m8"));
        // A short chunk is the end of the index.
        let mut scan = Scan::new(None, 5, 3);
        let page = scan.take(members(8..10), vec![Some(9), None]).unwrap();
        assert_eq!((page.items, page.next_cursor), (vec![9], None));
    }

    #[test]
    fn a_thin_filter_stops_at_the_budget_and_continues_from_there() {
        let mut scan: Scan<u64> = Scan::new(None, 10, SCAN_CHUNK);
        let mut top = 100_000;
        let page = loop {
            let chunk = members(top - SCAN_CHUNK as u64..top);
            let matches = vec![None; chunk.len()];
            top -= SCAN_CHUNK as u64;
            if let Some(page) = scan.take(chunk, matches) {
                break page;
            }
            assert!(scan.at().is_some());
        };
        assert!(page.items.is_empty());
        let next = page.next_cursor.unwrap();
        assert_eq!(IndexCursor::parse(&next).unwrap().score, top);
    }

    #[test]
    fn stream_ids() {
        for ok in ["1700000000000-0", "1700000000000", "0-1"] {
            assert!(is_stream_id(ok), "{ok}");
        }
        for bad in ["", "-1", "1-", "1-2-3", "abc", "1 -2", "(1-0"] {
            assert!(!is_stream_id(bad), "{bad}");
        }
    }

    #[test]
    fn entries_keep_their_field_order_and_survive_odd_bytes() {
        use redis::Value::{Array, BulkString};
        let reply = Array(vec![Array(vec![
            BulkString(b"1-0".to_vec()),
            Array(vec![
                BulkString(b"to".to_vec()),
                BulkString(b"138".to_vec()),
                BulkString(b"text".to_vec()),
                BulkString(vec![0xff, b'a']),
            ]),
        ])]);
        let entries = parse_entries(reply).unwrap();
        assert_eq!(entries[0].entry_id, "1-0");
        let keys: Vec<&String> = entries[0].fields.keys().collect();
        assert_eq!(keys, ["to", "text"]);
        assert_eq!(entries[0].fields["text"], "\u{fffd}a");
    }
}
