//! The typed event type of a received event, for handlers that dispatch on it.

use flotilla_proto::EventType;

use super::Event;

impl Event {
    /// The catalog type of this event, `None` for a type outside the v1 catalog.
    pub fn kind(&self) -> Option<EventType> {
        EventType::from_ce_type(&self.ce_type)
    }
}

#[cfg(test)]
mod tests {
    use async_nats::HeaderMap;
    use bytes::Bytes;

    use super::*;

    fn received(ce_type: &str) -> Event {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", "1.0");
        headers.insert("ce-id", "1");
        headers.insert("ce-source", "test");
        headers.insert("ce-type", ce_type);
        Event::from_parts("flotilla.x.k", Some(&headers), Bytes::new()).expect("valid envelope")
    }

    #[test]
    fn a_received_event_names_its_catalog_type() {
        let event = received(EventType::BuildSucceeded.ce_type());
        assert_eq!(event.kind(), Some(EventType::BuildSucceeded));
        assert_eq!(received("dev.other.thing.v1").kind(), None);
    }
}
