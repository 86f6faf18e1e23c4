//! Hibernation, the cost control of preview envs: a weekly window (nights and weekends, say, in
//! a time zone) during which preview envs are suspended, and after which those the reaper
//! suspended are resumed. Pure: the window and the time in, whether it is on, out.
//!
//! The window is written as entries separated by `,`: `DAYS` (all day) or `DAYS HH:MM-HH:MM`,
//! where `DAYS` is a day (`Mon`) or a range (`Mon-Fri`, `Sat-Sun`, `Fri-Mon`). A time range that
//! ends before it starts runs past midnight and belongs to the day it starts on:
//! `Mon-Fri 20:00-07:00, Sat-Sun` is every night of the working week and the whole weekend.
//! Times are wall-clock times in the window's time zone (an IANA name such as `Europe/Paris`,
//! read from the system's zoneinfo), so the window follows daylight saving time.

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

/// One entry: days, and the part of each day (all of it when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    days: Vec<Weekday>,
    hours: Option<(Time, Time)>,
}

/// A weekly hibernation window in a time zone.
#[derive(Debug, Clone)]
pub struct Window {
    entries: Vec<Entry>,
    zone: TimeZone,
    /// As written, for logs and `--help` answers.
    text: String,
}

impl PartialEq for Window {
    fn eq(&self, other: &Window) -> bool {
        self.text == other.text && self.zone.iana_name() == other.zone.iana_name()
    }
}

impl Window {
    /// Parses `text` in time zone `zone` (an IANA name; `UTC` when empty). Errors name the
    /// entry that does not read.
    pub fn parse(text: &str, zone: &str) -> Result<Window, String> {
        let zone = if zone.trim().is_empty() {
            TimeZone::UTC
        } else {
            TimeZone::get(zone.trim()).map_err(|e| format!("time zone {zone:?}: {e}"))?
        };
        let entries = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(entry)
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Err("the hibernation window is empty".into());
        }
        Ok(Window {
            entries,
            zone,
            text: text.trim().to_owned(),
        })
    }

    /// Whether the window is on at `at`.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.zone.clone());
        let (day, time) = (local.weekday(), local.time());
        let yesterday = day.previous();
        self.entries.iter().any(|entry| match entry.hours {
            None => entry.days.contains(&day),
            Some((start, end)) if start < end => {
                entry.days.contains(&day) && time >= start && time < end
            }
            // Past midnight: the evening of a listed day, or the morning after one.
            Some((start, end)) => {
                (entry.days.contains(&day) && time >= start)
                    || (entry.days.contains(&yesterday) && time < end)
            }
        })
    }

    /// The window as written, with its zone.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.text, self.zone.iana_name().unwrap_or("UTC"))
    }
}

fn entry(text: &str) -> Result<Entry, String> {
    let bad = |why: &str| format!("hibernation window entry {text:?}: {why}");
    let (days, hours) = match text.split_once(char::is_whitespace) {
        Some((days, hours)) => (days, Some(hours.trim())),
        None => (text, None),
    };
    let days = day_range(days).map_err(|why| bad(&why))?;
    let hours = match hours {
        None => None,
        Some(hours) => {
            let (start, end) = hours
                .split_once('-')
                .ok_or_else(|| bad("the hours are HH:MM-HH:MM"))?;
            let time = |t: &str| {
                Time::strptime("%H:%M", t.trim()).map_err(|_| bad(&format!("{t:?} is not HH:MM")))
            };
            let (start, end) = (time(start)?, time(end)?);
            if start == end {
                return Err(bad("the hours start and end at the same time"));
            }
            Some((start, end))
        }
    };
    Ok(Entry { days, hours })
}

fn day_range(text: &str) -> Result<Vec<Weekday>, String> {
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (day(first)?, day(last)?),
        None => (day(text)?, day(text)?),
    };
    let mut days = vec![first];
    let mut current = first;
    while current != last {
        current = current.next();
        days.push(current);
    }
    Ok(days)
}

fn day(text: &str) -> Result<Weekday, String> {
    let days = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    let lower = text.trim().to_ascii_lowercase();
    days.iter()
        .find(|(name, _)| lower.starts_with(name))
        .map(|(_, day)| *day)
        .ok_or_else(|| format!("{text:?} is not a day (Mon, Tue, ... Sun)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn nights_of_the_working_week_and_the_weekend() {
        let w = Window::parse("Mon-Fri 20:00-07:00, Sat-Sun", "UTC").expect("reads");
        // 2026-12-07 is a Monday.
        assert!(!w.contains(at("2026-12-07T12:00:00Z")), "Monday noon");
        assert!(w.contains(at("2026-12-07T21:00:00Z")), "Monday night");
        assert!(w.contains(at("2026-12-08T06:59:00Z")), "Tuesday before 7");
        assert!(!w.contains(at("2026-12-08T07:00:00Z")), "Tuesday 7:00");
        assert!(w.contains(at("2026-12-12T12:00:00Z")), "Saturday");
        assert!(w.contains(at("2026-12-13T23:59:00Z")), "Sunday night");
        // Friday night runs into Saturday, which is all day anyway; Monday morning is Sunday's
        // night only if Sunday had hours: it is all day, so Monday 06:00 is outside.
        assert!(!w.contains(at("2026-12-07T06:00:00Z")), "Monday morning");
    }

    #[test]
    fn the_window_follows_the_time_zone_and_its_daylight_saving() {
        let w = Window::parse("Mon-Fri 20:00-07:00", "Europe/Paris").expect("reads");
        // Winter: Paris is UTC+1, so 20:00 there is 19:00 UTC.
        assert!(w.contains(at("2026-12-07T19:30:00Z")));
        assert!(!w.contains(at("2026-12-07T18:30:00Z")));
        // Summer: UTC+2, so 20:00 there is 18:00 UTC.
        assert!(w.contains(at("2026-06-08T18:30:00Z")));
    }

    #[test]
    fn bad_windows_name_what_does_not_read() {
        for (text, zone, named) in [
            ("", "UTC", "empty"),
            ("Funday", "UTC", "Funday"),
            ("Mon 25:00-07:00", "UTC", "25:00"),
            ("Mon 20:00", "UTC", "HH:MM-HH:MM"),
            ("Mon", "Mars/Olympus", "Mars/Olympus"),
        ] {
            let error = Window::parse(text, zone).expect_err(text);
            assert!(error.contains(named), "{text}: {error}");
        }
    }
}
