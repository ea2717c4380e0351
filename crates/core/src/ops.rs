//! What a request cost: D1 statements, rows read and written, KV operations, and time
//! spent waiting on each. Reported in `X-Sync-Ops` (an RFC 8941 dictionary) and
//! `Server-Timing`, so tests and benchmarks can assert costs instead of timings.

use std::cell::Cell;

#[derive(Debug, Default)]
pub struct Ops {
    pub d1: Cell<u64>,
    pub rows_read: Cell<u64>,
    pub rows_written: Cell<u64>,
    pub kv_read: Cell<u64>,
    pub kv_write: Cell<u64>,
    /// Milliseconds waited: whole ones, the resolution of the Workers clock (`Date.now()`
    /// moves in whole milliseconds, and only across I/O).
    pub d1_ms: Cell<u64>,
    pub kv_ms: Cell<u64>,
}

fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get().saturating_add(n));
}

impl Ops {
    pub fn d1_batch(&self, statements: u64, rows_read: u64, rows_written: u64, ms: u64) {
        add(&self.d1, statements);
        add(&self.rows_read, rows_read);
        add(&self.rows_written, rows_written);
        add(&self.d1_ms, ms);
    }

    pub fn kv(&self, reads: u64, writes: u64, ms: u64) {
        add(&self.kv_read, reads);
        add(&self.kv_write, writes);
        add(&self.kv_ms, ms);
    }

    /// `X-Sync-Ops` value.
    pub fn header(&self) -> String {
        format!(
            "d1={}, rows-read={}, rows-written={}, kv-read={}, kv-write={}",
            self.d1.get(),
            self.rows_read.get(),
            self.rows_written.get(),
            self.kv_read.get(),
            self.kv_write.get()
        )
    }

    /// `Server-Timing` value; d1/kv entries only when used. Whole milliseconds, the
    /// clock's own resolution (a `{:.1}` of them only ever printed `.0`, through core's
    /// float formatting on every response).
    pub fn server_timing(&self, total_ms: u64) -> String {
        let mut s = format!("total;dur={total_ms}");
        if self.d1.get() > 0 {
            s.push_str(&format!(", d1;dur={}", self.d1_ms.get()));
        }
        if self.kv_read.get() != 0 || self.kv_write.get() != 0 {
            s.push_str(&format!(", kv;dur={}", self.kv_ms.get()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_an_rfc8941_dictionary() {
        let ops = Ops::default();
        ops.d1_batch(2, 10, 3, 1);
        ops.d1_batch(1, 1, 0, 1);
        ops.kv(1, 0, 0);
        assert_eq!(ops.header(), "d1=3, rows-read=11, rows-written=3, kv-read=1, kv-write=0");
        assert_eq!(ops.server_timing(4), "total;dur=4, d1;dur=2, kv;dur=0");
        assert_eq!(Ops::default().server_timing(1), "total;dur=1");
    }
}
