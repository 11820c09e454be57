//! A link's toxics as its connections see them: one [`Chain`] per stream. A leaf, so the
//! link (which publishes chains) and the connections and pumps (which read them) do not
//! import each other both ways.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::network::proxy_model::ToxicSpec;
use crate::network::toxics::DynToxic;

/// A toxic on a link, shared by every connection's pump of its stream.
#[derive(Debug)]
pub(crate) struct ToxicEntry {
    /// Kept across updates, new on each add: tells an update from a remove and re-add.
    pub(crate) id: u64,
    pub(crate) spec: ToxicSpec,
    pub(crate) toxic: Arc<dyn DynToxic>,
}

impl ToxicEntry {
    pub(crate) fn new(spec: ToxicSpec, toxic: Arc<dyn DynToxic>) -> ToxicEntry {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ToxicEntry {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            spec,
            toxic,
        }
    }
}

/// The toxics of one stream, in order, as the connections see them.
pub(crate) type Chain = Arc<Vec<Arc<ToxicEntry>>>;
