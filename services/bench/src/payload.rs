//! The data both pipelines carry, of one size.

use bytes::Bytes;
use flotilla_proto::v1::Build;
use prost::Message;

/// The change every benchmark event is about.
const CHANGE_ID: &str = "bench-v1";

/// A `Build` whose protobuf encoding is `size` bytes, or one byte less where the length prefix
/// of the padding makes `size` itself unreachable. `size` is at least the fixed fields' size.
pub(crate) fn build_of_size(size: usize) -> Build {
    let mut build = Build {
        change_id: CHANGE_ID.to_owned(),
        app: "bench".to_owned(),
        ..Build::default()
    };
    // `reason` pads the message: one tag byte, a varint length, then the text.
    let fixed = build.encoded_len() + 1;
    let mut pad = size.saturating_sub(fixed);
    while pad > 0 && fixed + prost::length_delimiter_len(pad) + pad > size {
        pad -= 1;
    }
    build.reason = "x".repeat(pad);
    build
}

/// What the bare pipeline sends: as many bytes as the bus's encoded `Build`, so the two carry
/// exactly the same payload size.
pub(crate) fn bare_payload(build: &Build) -> Bytes {
    Bytes::from(vec![b'x'; build.encoded_len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_is_the_requested_size_within_a_byte() {
        for size in crate::args::MIN_PAYLOAD..2_000 {
            let len = build_of_size(size).encoded_len();
            assert!(len == size || len + 1 == size, "asked {size}, got {len}");
        }
    }

    #[test]
    fn bare_payload_matches_the_bus_payload() {
        let build = build_of_size(256);
        assert_eq!(bare_payload(&build).len(), build.encode_to_vec().len());
    }
}
