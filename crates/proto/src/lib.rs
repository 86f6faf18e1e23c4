//! Flotilla's v1 event schemas.
//!
//! The `.proto` files under `proto/flotilla/v1/` are the source of truth. This crate compiles them
//! at build time into prost types ([`v1`]), embeds their descriptor set so that payloads can be
//! rendered with the proto3 JSON mapping ([`json`]), and names which message each event type
//! carries ([`catalog`]).

pub mod catalog;
mod event_type;
pub mod json;

pub use catalog::{EventSpec, EventType};
pub use event_type::UnknownEventType;

/// The generated prost types of package `flotilla.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/flotilla.v1.rs"));
}

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

/// The encoded `FileDescriptorSet` of `proto/` (and the well-known types it imports).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/flotilla_descriptor.bin"));

/// The descriptor pool of every Flotilla message, decoded once.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The bytes were produced by protox in build.rs from the same proto files; failing to
        // decode them is a build defect, not an input error.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .unwrap_or_else(|e| panic!("embedded descriptor set is invalid: {e}"))
    })
}
