//! The three scenarios of the demo as a pure state machine: which events of the fleet complete
//! each one, what the demo does next, and what happened in the end.
//!
//! 1. a good change (ping answers `{"value":"pong"}`) pushed: promoted by its canary, its
//!    staging env deleted;
//! 2. a bad change (a 5xx rate) pushed: its canary aborted, production's manifest in git back
//!    at the good version;
//! 3. a pull request: its preview env created when it is opened, deleted when it is closed.

use crate::demo::seen::Seen;

/// The commits the demo pushes.
#[derive(Debug, Clone)]
pub struct Shas {
    pub good: String,
    pub bad: String,
    pub preview: String,
}

/// A scenario, numbered as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Good = 1,
    Bad = 2,
    Preview = 3,
}

impl Scenario {
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Good => {
                "A good change: ping answers {\"value\":\"pong\"}, pushed to main as a signed GitHub webhook"
            }
            Scenario::Bad => {
                "A bad change: the same answer, but 1 request in 4 fails with a 500, pushed to main"
            }
            Scenario::Preview => "A pull request: a preview env on opened, removed on closed",
        }
    }
}

/// What the demo does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Heading(Scenario),
    /// A push of this commit to main.
    Push(String),
    /// The pull request, at this head commit, opened or closed.
    OpenPullRequest(String),
    ClosePullRequest(String),
    /// Read production's manifest in the GitOps repository, then call [`Script::production`].
    CheckProduction,
}

/// What is known of one change.
#[derive(Debug, Default)]
struct Track {
    change_id: Option<String>,
    version: Option<String>,
    env: Option<String>,
    env_created: bool,
    tested: bool,
    /// The canary's last measurement, as the timeline says it.
    measured: Option<String>,
    /// The canary's verdict: the event's summary.
    promoted: Option<String>,
    aborted: Option<String>,
    rolled_back: bool,
    env_deleted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Running(Scenario),
    Done,
}

/// One outcome the demo promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub name: &'static str,
    pub ok: bool,
    /// What happened, or what is missing.
    pub detail: String,
    pub change_id: Option<String>,
}

/// The scenarios' progress.
#[derive(Debug)]
pub struct Script {
    shas: Shas,
    phase: Phase,
    good: Track,
    bad: Track,
    preview: Track,
    checking: bool,
    /// Production's version in git once the bad change was rolled back.
    production: Option<Result<String, String>>,
    closed: bool,
    failed: Option<String>,
}

impl Script {
    pub fn new(shas: Shas) -> Script {
        Script {
            shas,
            phase: Phase::NotStarted,
            good: Track::default(),
            bad: Track::default(),
            preview: Track::default(),
            checking: false,
            production: None,
            closed: false,
            failed: None,
        }
    }

    /// The first scenario.
    pub fn start(&mut self) -> Vec<Action> {
        self.phase = Phase::Running(Scenario::Good);
        vec![
            Action::Heading(Scenario::Good),
            Action::Push(self.shas.good.clone()),
        ]
    }

    /// Every scenario ran, or one cannot finish.
    pub fn finished(&self) -> bool {
        self.phase == Phase::Done || self.failed.is_some()
    }

    /// Why the demo cannot finish, when it cannot.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The change id of the good change, once built.
    pub fn good_change(&self) -> Option<&str> {
        self.good.change_id.as_deref()
    }

    /// Takes in an event of the fleet; what to do next.
    pub fn observe(&mut self, seen: &Seen) -> Vec<Action> {
        if seen.event_type == "build.started" {
            let sha = seen.text("sha");
            let change = seen
                .change_id
                .clone()
                .or_else(|| Some(seen.text("changeId").to_owned()));
            for (track, ours) in self.tracks_mut() {
                if sha == ours && track.change_id.is_none() {
                    track.change_id = change.clone();
                    track.version = Some(seen.text("version").to_owned());
                }
            }
        }
        let Some(which) = self.which(seen) else {
            return Vec::new();
        };
        let track = self.track_mut(which);
        let mut failure = None;
        match seen.event_type.as_str() {
            "env.requested" => {
                track.env = Some(seen.key.clone());
                track.env_created = true;
            }
            "tests.passed" => track.tested = true,
            "canary.measurement" => track.measured = Some(seen.summary()),
            "canary.promoted" => track.promoted = Some(seen.summary()),
            "canary.aborted" => track.aborted = Some(seen.summary()),
            "release.rolled_back" => track.rolled_back = true,
            "env.deleted" if track.env.as_deref() == Some(seen.key.as_str()) => {
                track.env_deleted = true;
            }
            "build.failed" | "env.failed" | "tests.failed" => {
                failure = Some(format!(
                    "{} {}: {}",
                    seen.event_type,
                    seen.key,
                    seen.summary()
                ));
            }
            _ => {}
        }
        if let Some(why) = failure {
            self.fail(why);
        }
        match (which, seen.event_type.as_str()) {
            (Scenario::Good, "canary.aborted") => {
                self.fail(format!(
                    "the good change's canary was aborted: {}",
                    seen.summary()
                ));
            }
            (Scenario::Bad, "canary.promoted") => {
                self.fail("the bad change's canary was promoted".to_owned());
            }
            _ => {}
        }
        self.advance()
    }

    /// Takes in production's version as read from git after the rollback.
    pub fn production(&mut self, version: Result<String, String>) -> Vec<Action> {
        self.production = Some(version);
        self.advance()
    }

    /// A reason the demo cannot finish (a dead letter, a failed step).
    pub fn fail(&mut self, why: String) {
        self.failed.get_or_insert(why);
    }

    fn advance(&mut self) -> Vec<Action> {
        if self.failed.is_some() {
            return Vec::new();
        }
        match self.phase {
            Phase::Running(Scenario::Good)
                if self.good.promoted.is_some() && self.good.env_deleted =>
            {
                self.phase = Phase::Running(Scenario::Bad);
                vec![
                    Action::Heading(Scenario::Bad),
                    Action::Push(self.shas.bad.clone()),
                ]
            }
            Phase::Running(Scenario::Bad) if self.bad.rolled_back && !self.checking => {
                self.checking = true;
                vec![Action::CheckProduction]
            }
            Phase::Running(Scenario::Bad) => match &self.production {
                Some(Ok(version)) if Some(version) != self.good.version.as_ref() => {
                    let why = format!(
                        "after the rollback production's manifest holds ping {version}, not the good version {}",
                        self.good.version.as_deref().unwrap_or("?")
                    );
                    self.fail(why);
                    Vec::new()
                }
                Some(Err(why)) => {
                    let why = format!("production's manifest could not be read: {why}");
                    self.fail(why);
                    Vec::new()
                }
                Some(Ok(_)) if self.bad.env_deleted => {
                    self.phase = Phase::Running(Scenario::Preview);
                    vec![
                        Action::Heading(Scenario::Preview),
                        Action::OpenPullRequest(self.shas.preview.clone()),
                    ]
                }
                _ => Vec::new(),
            },
            Phase::Running(Scenario::Preview) if self.preview.tested && !self.closed => {
                self.closed = true;
                vec![Action::ClosePullRequest(self.shas.preview.clone())]
            }
            Phase::Running(Scenario::Preview) if self.closed && self.preview.env_deleted => {
                self.phase = Phase::Done;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The scenario an event is about: by its change, or by the env it names.
    fn which(&self, seen: &Seen) -> Option<Scenario> {
        let tracks = [
            (Scenario::Good, &self.good),
            (Scenario::Bad, &self.bad),
            (Scenario::Preview, &self.preview),
        ];
        tracks
            .iter()
            .find(|(_, track)| track.change_id.is_some() && track.change_id == seen.change_id)
            .or_else(|| {
                tracks
                    .iter()
                    .find(|(_, track)| track.env.as_deref() == Some(seen.key.as_str()))
            })
            .map(|(scenario, _)| *scenario)
    }

    fn track_mut(&mut self, scenario: Scenario) -> &mut Track {
        match scenario {
            Scenario::Good => &mut self.good,
            Scenario::Bad => &mut self.bad,
            Scenario::Preview => &mut self.preview,
        }
    }

    fn tracks_mut(&mut self) -> [(&mut Track, &str); 3] {
        [
            (&mut self.good, self.shas.good.as_str()),
            (&mut self.bad, self.shas.bad.as_str()),
            (&mut self.preview, self.shas.preview.as_str()),
        ]
    }
}

#[path = "script_outcomes.rs"]
mod outcomes;

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
