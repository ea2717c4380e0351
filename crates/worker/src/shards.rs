//! Which D1 database a user's pages are in ([`edgesync_core::shards`]): the configured
//! `SHARD_MAP`, plus the forwarding addresses this isolate has met in fences (a moved
//! bucket's old database says where it went; remembered so the next request goes
//! straight there). Usage accounting is not sharded: it always lives in `DB`.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{D1Database, Env};

use edgesync_core::error::ApiError;
use edgesync_core::shards::ShardMap;

/// Buckets whose fence this isolate has followed, and where to: one entry a bucket, of
/// [`edgesync_core::shards::BUCKETS`], searched in a vector rather than a
/// HashMap<u32, String>, a hash table of its own in the wasm (296,983 -> 296,881 B gzip).
pub type Learned = RefCell<Vec<(u32, String)>>;

#[derive(Clone, Copy)]
pub struct Router<'a> {
    env: &'a Env,
    map: &'a Result<ShardMap, String>,
    learned: &'a Learned,
}

impl<'a> Router<'a> {
    pub fn new(env: &'a Env, map: &'a Result<ShardMap, String>, learned: &'a Learned) -> Self {
        Router { env, map, learned }
    }

    /// The configured map (a malformed `SHARD_MAP` is an internal error here).
    pub fn shard_map(&self) -> Result<&'a ShardMap, ApiError> {
        self.map.as_ref().map_err(|e| ApiError::Internal(e.clone()))
    }

    /// A database by binding name.
    pub fn open(&self, binding: &str) -> Result<Rc<D1Database>, ApiError> {
        self.env.d1(binding).map(Rc::new).map_err(|e| ApiError::Internal(format!("D1 binding {binding}: {e}")))
    }

    /// The database a bucket's users are looked for first.
    pub fn home(&self, bucket: u32) -> Result<Rc<D1Database>, ApiError> {
        let binding = match self.learned.borrow().iter().find(|(b, _)| *b == bucket) {
            Some((_, to)) => to.clone(),
            None => self.shard_map()?.binding(bucket).to_string(),
        };
        self.open(&binding)
    }

    /// Follows a fence's forwarding address, and remembers it (or forgets it when it
    /// points back where the configuration says).
    pub fn follow(&self, bucket: u32, to: &str) -> Result<Rc<D1Database>, ApiError> {
        let db = self.open(to)?;
        let mut learned = self.learned.borrow_mut();
        let known = learned.iter().position(|(b, _)| *b == bucket);
        match (self.shard_map()?.binding(bucket) == to, known) {
            (true, Some(i)) => {
                learned.swap_remove(i);
            }
            (true, None) => {}
            (false, Some(i)) => learned[i].1 = to.to_string(),
            (false, None) => learned.push((bucket, to.to_string())),
        }
        Ok(db)
    }

    /// Every configured database, by binding (the purge visits each).
    pub fn all(&self) -> Result<Vec<(String, Rc<D1Database>)>, ApiError> {
        self.shard_map()?.bindings().iter().map(|b| Ok((b.clone(), self.open(b)?))).collect()
    }
}
