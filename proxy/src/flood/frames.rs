//! HTTP/2 frame headers walked in a byte stream that arrives in pieces, and the token bucket
//! that budgets the frames a client makes the server answer.
//!
//! Only the 9-byte headers are looked at: payloads are skipped by count, never buffered, so
//! following a connection costs a few words of state and nothing per byte of payload.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Length of a frame header (RFC 9113 §4.1).
const HEADER_LEN: usize = 9;

/// Frame types (RFC 9113 §6).
pub(crate) const DATA: u8 = 0x0;
pub(crate) const HEADERS: u8 = 0x1;
pub(crate) const PRIORITY: u8 = 0x2;
pub(crate) const SETTINGS: u8 = 0x4;
pub(crate) const PING: u8 = 0x6;
pub(crate) const GOAWAY: u8 = 0x7;
pub(crate) const CONTINUATION: u8 = 0x9;

/// Flags.
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// The GOAWAY error code ENHANCE_YOUR_CALM (RFC 9113 §7).
pub(crate) const ENHANCE_YOUR_CALM: u32 = 0xb;

/// A frame header as read off the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// Payload length (24 bits).
    pub(crate) len: u32,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    /// Stream identifier, reserved bit cleared.
    pub(crate) stream: u32,
}

impl Header {
    fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *bytes;
        Header {
            len: u32::from_be_bytes([0, l0, l1, l2]),
            kind,
            flags,
            stream: u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff,
        }
    }

    /// Whether the frame makes the server answer or work while carrying nothing a request needs:
    /// SETTINGS and PING (each non-ACK one must be answered; ACKs are counted too, since the
    /// server sends a single SETTINGS and no PINGs of its own, so a real client sends at most
    /// one or two), PRIORITY (ignored by h2, yet parsed), frames of unknown types (ignored
    /// after being read), and empty DATA, HEADERS or CONTINUATION frames that end nothing
    /// (CVE-2019-9518). Resets and long CONTINUATION chains are bounded by h2 itself, and a
    /// zero WINDOW_UPDATE increment already ends the connection.
    pub(crate) fn is_costly(&self) -> bool {
        match self.kind {
            SETTINGS | PING | PRIORITY => true,
            DATA => self.len == 0 && self.flags & END_STREAM == 0,
            HEADERS | CONTINUATION => self.len == 0 && self.flags & END_HEADERS == 0,
            kind => kind > CONTINUATION,
        }
    }
}

/// Where a byte stream stands between frames: inside a header, or skipping a payload.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FrameReader {
    head: [u8; HEADER_LEN],
    /// Header bytes already in `head`.
    have: u8,
    /// Payload bytes still to skip.
    skip: u32,
}

impl FrameReader {
    /// Whether the next byte starts a frame.
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.skip == 0
    }

    /// Walks `bytes`, the next piece of the stream, calling `on_header` for every header it
    /// completes; stops at the first `Break` (the rest of `bytes` is left unread, so the reader
    /// is only meaningful again if the stream ends there).
    pub(crate) fn feed<B>(
        &mut self,
        mut bytes: &[u8],
        mut on_header: impl FnMut(Header) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        loop {
            if self.skip > 0 {
                let n = bytes.len().min(self.skip as usize);
                // n <= skip, a u32.
                self.skip -= n as u32;
                bytes = &bytes[n..];
            }
            if bytes.is_empty() {
                return ControlFlow::Continue(());
            }
            let header = if self.have == 0 && bytes.len() >= HEADER_LEN {
                // The common case: a whole header within this piece, parsed in place.
                let (head, rest) = bytes.split_at(HEADER_LEN);
                bytes = rest;
                let mut whole = [0; HEADER_LEN];
                whole.copy_from_slice(head);
                Header::parse(&whole)
            } else {
                let have = usize::from(self.have);
                let n = bytes.len().min(HEADER_LEN - have);
                self.head[have..have + n].copy_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                // have + n <= 9.
                self.have += n as u8;
                if usize::from(self.have) < HEADER_LEN {
                    return ControlFlow::Continue(());
                }
                self.have = 0;
                Header::parse(&self.head)
            };
            self.skip = header.len;
            on_header(header)?;
        }
    }
}

/// A GOAWAY frame: no further streams after `last_stream`, for reason `code`.
pub(crate) fn goaway(last_stream: u32, code: u32) -> [u8; HEADER_LEN + 8] {
    let mut frame = [0; HEADER_LEN + 8];
    frame[2] = 8;
    frame[3] = GOAWAY;
    frame[9..13].copy_from_slice(&(last_stream & 0x7fff_ffff).to_be_bytes());
    frame[13..17].copy_from_slice(&code.to_be_bytes());
    frame
}

/// A token bucket: starts full with `burst` tokens and earns `rate` back per second, never
/// holding more than `burst`. Time is passed in, so that it is tested without a clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenBucket {
    tokens: u32,
    /// When the tokens were last counted (`None` until the first take).
    since: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens.
    pub(crate) fn full(burst: u32) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            since: None,
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant, burst: u32, rate: u32) -> bool {
        let since = *self.since.get_or_insert(now);
        if rate > 0 && self.tokens < burst {
            let elapsed = now.saturating_duration_since(since).as_nanos();
            let earned = elapsed * u128::from(rate) / 1_000_000_000;
            if earned > 0 {
                let tokens = (u128::from(self.tokens) + earned).min(u128::from(burst));
                // At most `burst`, a u32.
                self.tokens = tokens as u32;
                // The fraction of a token already under way is kept, unless the bucket filled.
                self.since = Some(if self.tokens == burst {
                    now
                } else {
                    let spent = earned * 1_000_000_000 / u128::from(rate);
                    since + Duration::from_nanos(u64::try_from(spent).unwrap_or(u64::MAX))
                });
            }
        } else {
            // Full (or never refilled): time spent full earns nothing.
            self.since = Some(now);
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32, kind: u8, flags: u8, stream: u32) -> Vec<u8> {
        let mut bytes = len.to_be_bytes()[1..].to_vec();
        bytes.extend([kind, flags]);
        bytes.extend(stream.to_be_bytes());
        bytes.extend(std::iter::repeat_n(0xaa, len as usize));
        bytes
    }

    fn headers_in(pieces: &[&[u8]]) -> (Vec<Header>, FrameReader) {
        let mut reader = FrameReader::default();
        let mut seen = Vec::new();
        for piece in pieces {
            let flow: ControlFlow<()> = reader.feed(piece, |h| {
                seen.push(h);
                ControlFlow::Continue(())
            });
            assert!(flow.is_continue());
        }
        (seen, reader)
    }

    fn stream() -> (Vec<u8>, Vec<Header>) {
        let frames = [
            (6, SETTINGS, 0, 0),
            (0, SETTINGS, 1, 0),
            (8, PING, 0, 0),
            (20, HEADERS, END_HEADERS, 1),
            (0, DATA, END_STREAM, 1),
            (5, PRIORITY, 0, 3),
            (0, 0xfa, 0, 0),
            (4, 8, 0, 0x8000_0005),
        ];
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for (len, kind, flags, stream) in frames {
            bytes.extend(frame(len, kind, flags, stream));
            expected.push(Header {
                len,
                kind,
                flags,
                stream: stream & 0x7fff_ffff,
            });
        }
        (bytes, expected)
    }

    #[test]
    fn headers_are_found_whole_and_split_at_every_position() {
        let (bytes, expected) = stream();
        let (seen, reader) = headers_in(&[&bytes]);
        assert_eq!(seen, expected);
        assert!(reader.at_boundary());
        for cut in 0..=bytes.len() {
            let (seen, reader) = headers_in(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(seen, expected, "cut at {cut}");
            assert!(reader.at_boundary(), "cut at {cut}");
        }
        for second in 0..=bytes.len() {
            for first in 0..=second {
                let pieces = [&bytes[..first], &bytes[first..second], &bytes[second..]];
                assert_eq!(headers_in(&pieces).0, expected, "cuts at {first}, {second}");
            }
        }
    }

    #[test]
    fn byte_by_byte_the_boundary_is_only_between_frames() {
        let (bytes, _) = stream();
        let mut reader = FrameReader::default();
        let mut ends = Vec::new();
        for (i, byte) in bytes.iter().enumerate() {
            let _: ControlFlow<()> =
                reader.feed(std::slice::from_ref(byte), |_| ControlFlow::Continue(()));
            if reader.at_boundary() {
                ends.push(i + 1);
            }
        }
        // Frame ends: each is 9 bytes of header plus its payload.
        let mut expected = Vec::new();
        let mut at = 0;
        for len in [6, 0, 8, 20, 0, 5, 0, 4] {
            at += 9 + len;
            expected.push(at);
        }
        assert_eq!(ends, expected);
    }

    #[test]
    fn a_break_stops_at_that_header() {
        let (bytes, _) = stream();
        let mut reader = FrameReader::default();
        let mut count = 0;
        let flow = reader.feed(&bytes, |h| {
            count += 1;
            if h.kind == PING {
                ControlFlow::Break(h.len)
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(flow, ControlFlow::Break(8));
        assert_eq!(count, 3);
    }

    #[test]
    fn costly_frames() {
        let header = |len, kind, flags| Header {
            len,
            kind,
            flags,
            stream: 1,
        };
        for costly in [
            header(0, SETTINGS, 0),
            header(0, SETTINGS, 1),
            header(8, PING, 0),
            header(8, PING, 1),
            header(5, PRIORITY, 0),
            header(0, DATA, 0),
            header(0, CONTINUATION, 0),
            header(0, HEADERS, 0),
            header(3, 0x0a, 0),
            header(3, 0xff, 0),
        ] {
            assert!(costly.is_costly(), "{costly:?}");
        }
        for cheap in [
            header(10, DATA, 0),
            header(0, DATA, END_STREAM),
            header(12, HEADERS, END_HEADERS),
            header(0, CONTINUATION, END_HEADERS),
            header(4, 3, 0),
            header(8, GOAWAY, 0),
            header(4, 8, 0),
        ] {
            assert!(!cheap.is_costly(), "{cheap:?}");
        }
    }

    #[test]
    fn goaway_frame_layout() {
        let frame = goaway(0x8000_0007, ENHANCE_YOUR_CALM);
        assert_eq!(
            frame,
            [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0x0b]
        );
        let (seen, _) = headers_in(&[&frame]);
        assert_eq!(seen[0].kind, GOAWAY);
    }

    #[test]
    fn the_bucket_allows_a_burst_then_its_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(100);
        for _ in 0..100 {
            assert!(bucket.take(start, 100, 20));
        }
        assert!(!bucket.take(start, 100, 20));
        // 20 per second: one token every 50 ms, partial progress kept.
        let at = |ms| start + Duration::from_millis(ms);
        assert!(!bucket.take(at(49), 100, 20));
        assert!(bucket.take(at(50), 100, 20));
        assert!(!bucket.take(at(70), 100, 20));
        assert!(bucket.take(at(100), 100, 20));
        assert!(bucket.take(at(230), 100, 20));
        assert!(bucket.take(at(230), 100, 20));
        assert!(!bucket.take(at(230), 100, 20));
        assert!(bucket.take(at(250), 100, 20));
        // A long pause refills to the burst and no further.
        let later = at(3_600_000);
        for _ in 0..100 {
            assert!(bucket.take(later, 100, 20));
        }
        assert!(!bucket.take(later, 100, 20));
    }

    #[test]
    fn time_spent_full_earns_nothing() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(3);
        assert!(bucket.take(start, 3, 1));
        // Back to full after a second; an idle hour after that adds nothing.
        let later = start + Duration::from_secs(3601);
        for _ in 0..3 {
            assert!(bucket.take(later, 3, 1));
        }
        assert!(!bucket.take(later, 3, 1));
    }

    #[test]
    fn a_zero_rate_makes_the_burst_a_lifetime_budget() {
        let start = Instant::now();
        let mut bucket = TokenBucket::full(2);
        assert!(bucket.take(start, 2, 0));
        assert!(bucket.take(start, 2, 0));
        assert!(!bucket.take(start + Duration::from_secs(86_400), 2, 0));
    }
}
