//! Independent stages built at once, with the output of a build that builds them one after the
//! other.
//!
//! Each stage runs on a thread of its own with a [`crate::backend::Backend::fork`] of the build's backend; the
//! build's thread starts stages whose dependencies are finished (at most
//! [`crate::backend::Backend::max_parallel_stages`] at once, in stage order) and relays their output in stage
//! order ([`Relay`]): the earliest unfinished stage's live, the others' held until their turn.
//! Step numbers are known in advance (each stage's count of steps is), so the text is exactly the
//! sequential build's.
//!
//! A failure is reported as the sequential build would report it: the first failing stage in
//! stage order. Stages after a failing one are stopped (their forks clean up what they made), and
//! earlier ones are let finish, as one of them may fail too and its error would come first.
//!
//! What decides whether two stages may run at once ([`schedule`]): the stage graph, and the cache.
//! Built one after the other, a stage finds the steps an earlier stage just made in the cache;
//! built at once, both would run them. So stages that start alike (the same base and the same
//! first instruction) are built one after the other. Steps that become alike later on (an ONBUILD
//! trigger of a common base, or instructions that differ in text only) are not detected: both run
//! them, with the same result but their own image IDs.

use std::collections::BTreeSet;
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};

use crate::backend::BackendError;
use crate::instructions::{InstructionKind, StagedFile};
use crate::shell::EnvList;
use crate::stages::StageGraph;

use super::args::BuildArgs;
use super::{BuildError, Builder, Finished, Output, ProgressSink, StageRef};

/// Output of a stage, in the order it came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    /// Text for the client.
    Stream(String),
    /// A finished stage's image ID.
    Aux(String),
}

fn emit(event: Event, sink: &mut dyn ProgressSink) {
    match event {
        Event::Stream(text) => sink.stream(&text),
        Event::Aux(id) => sink.aux_id(&id),
    }
}

/// Puts the output of stages that run at once in stage order: the stage whose turn it is (the
/// earliest unfinished one) goes straight to the sink; later stages' output is held, and sent
/// when their turn comes. After a failed stage's output, nothing more is sent: a sequential build
/// stops there.
pub(super) struct Relay {
    turn: usize,
    held: Vec<Vec<Event>>,
    done: Vec<Option<bool>>,
    halted: bool,
}

impl Relay {
    /// A relay for `stages` stages, numbered from 0 in stage order.
    pub(super) fn new(stages: usize) -> Self {
        Relay {
            turn: 0,
            held: vec![Vec::new(); stages],
            done: vec![None; stages],
            halted: false,
        }
    }

    /// Output of stage `pos`.
    pub(super) fn event(&mut self, pos: usize, event: Event, sink: &mut dyn ProgressSink) {
        if self.halted {
            return;
        }
        if pos == self.turn {
            emit(event, sink);
        } else if let Some(held) = self.held.get_mut(pos) {
            held.push(event);
        }
    }

    /// Stage `pos` ended (`ok`: it succeeded); whatever later stages held is sent up to the next
    /// unfinished or failed one.
    pub(super) fn done(&mut self, pos: usize, ok: bool, sink: &mut dyn ProgressSink) {
        if let Some(d) = self.done.get_mut(pos) {
            *d = Some(ok);
        }
        while !self.halted && self.turn < self.done.len() {
            match self.done[self.turn] {
                None => break,
                Some(false) => self.halted = true,
                Some(true) => {
                    self.turn += 1;
                    if let Some(held) = self.held.get_mut(self.turn) {
                        for event in std::mem::take(held) {
                            emit(event, sink);
                        }
                    }
                }
            }
        }
    }
}

/// What stages that run at once share: the finished ones (for FROM, `COPY --from` and
/// `RUN --mount=from=` of later stages) and which failed.
pub(super) struct Shared {
    /// The stages being built (index and name), in order.
    stages: Vec<(usize, Option<String>)>,
    state: Mutex<SharedState>,
    changed: Condvar,
}

#[derive(Default)]
struct SharedState {
    finished: Vec<Finished>,
    failed: BTreeSet<usize>,
    /// Stages after this one are stopped.
    stopped_after: Option<usize>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SharedState> {
        // Nothing a panicking holder does leaves the state half-changed.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The finished stage `wanted` names among those before stage `current`, waiting for it while
    /// it is being built: the graph knows which stages a stage reads from, but not those named
    /// through a stage's own ARG or by an ONBUILD trigger, which a sequential build would have
    /// finished by then.
    pub(super) fn wait_finished(
        &self,
        wanted: StageRef<'_>,
        current: usize,
    ) -> Result<Option<Finished>, BackendError> {
        let stages = self.stages.iter().map(|(i, n)| (*i, n.as_deref()));
        let Some(index) = wanted.resolve(stages, current) else {
            return Ok(None);
        };
        let mut state = self.lock();
        loop {
            if let Some(f) = state.finished.iter().find(|f| f.index == index) {
                return Ok(Some(f.clone()));
            }
            if state.failed.contains(&index) || state.stopped_after.is_some_and(|s| current > s) {
                return Err(BackendError::Cancelled);
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    fn finished(&self, f: Finished) {
        self.lock().finished.push(f);
        self.changed.notify_all();
    }

    fn failed(&self, index: usize) {
        self.lock().failed.insert(index);
        self.changed.notify_all();
    }

    fn stop_after(&self, index: usize) {
        {
            let mut state = self.lock();
            let s = state.stopped_after.get_or_insert(index);
            *s = (*s).min(index);
        }
        self.changed.notify_all();
    }
}

/// For each of the stages `needed` (in order), the positions in `needed` of the stages it must
/// wait for: those it reads from, those that start as it does (see the module's comment), and
/// every earlier one when it names a stage through a variable the graph could not resolve.
pub(super) fn schedule(
    staged: &StagedFile,
    graph: &StageGraph,
    needed: &[usize],
) -> Vec<Vec<usize>> {
    let pos_of = |index: usize| needed.iter().position(|&i| i == index);
    needed
        .iter()
        .enumerate()
        .map(|(p, &s)| {
            let stage = &staged.stages[s];
            let named_by_variable = stage.instructions.iter().any(|ins| match &ins.kind {
                InstructionKind::Copy(c) => c.from.as_deref().is_some_and(|f| f.contains('$')),
                InstructionKind::Run(r) => r
                    .mounts
                    .iter()
                    .any(|m| m.from.as_deref().is_some_and(|f| f.contains('$'))),
                _ => false,
            });
            if named_by_variable {
                return (0..p).collect();
            }
            let first = |i: usize| staged.stages[i].instructions.first().map(|x| &x.original);
            let mut deps: BTreeSet<usize> = graph.stages[s]
                .depends_on
                .iter()
                .filter_map(|&d| pos_of(d))
                .collect();
            deps.extend(needed[..p].iter().enumerate().filter_map(|(q, &t)| {
                (graph.stages[t].base == graph.stages[s].base && first(t) == first(s)).then_some(q)
            }));
            deps.into_iter().collect()
        })
        .collect()
}

/// Whether two stages of the schedule `deps` may run at once (some pair depends on neither the
/// other, directly or not).
pub(super) fn has_concurrency(deps: &[Vec<usize>]) -> bool {
    // Everything each stage waits for, directly or not (deps point to earlier stages).
    let mut before: Vec<BTreeSet<usize>> = Vec::with_capacity(deps.len());
    for d in deps {
        let mut all = BTreeSet::new();
        for &q in d {
            all.insert(q);
            all.extend(before[q].iter().copied());
        }
        before.push(all);
    }
    (0..deps.len()).any(|p| (0..p).any(|q| !before[p].contains(&q)))
}

/// A stage's output, sent to the build's thread.
enum Msg {
    Event(usize, Event),
    Done(usize, Result<(), BuildError>, Box<BuildArgs>),
}

/// A stage thread's sink.
struct Forward {
    pos: usize,
    tx: mpsc::Sender<Msg>,
}

impl ProgressSink for Forward {
    fn stream(&mut self, text: &str) {
        // The build's thread outlives every stage thread: a send fails only if it panicked.
        let _ = self
            .tx
            .send(Msg::Event(self.pos, Event::Stream(text.to_owned())));
    }

    fn aux_id(&mut self, id: &str) {
        let _ = self
            .tx
            .send(Msg::Event(self.pos, Event::Aux(id.to_owned())));
    }
}

impl Builder<'_> {
    /// Builds the stages `needed` with the schedule `deps`, up to `limit` at once; fills
    /// `self.finished` and merges the stages' build arguments as [`Builder::build_stage`] does.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_parallel(
        &mut self,
        staged: &StagedFile,
        graph: &StageGraph,
        meta_env: &EnvList,
        needed: &[usize],
        deps: &[Vec<usize>],
        target: usize,
        limit: usize,
    ) -> Result<(), BuildError> {
        let n = needed.len();
        // Each stage's first step number, as a sequential build counts them.
        let mut first_step = Vec::with_capacity(n);
        let mut step = self.step;
        for &s in needed {
            first_step.push(step);
            step += staged.stages[s].instructions.len() + 1;
        }
        let shared = Shared {
            stages: needed
                .iter()
                .map(|&i| (i, graph.stages[i].name.clone()))
                .collect(),
            state: Mutex::new(SharedState::default()),
            changed: Condvar::new(),
        };
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut relay = Relay::new(n);
        let mut started = vec![false; n];
        let mut ok = vec![false; n];
        let mut errors: Vec<Option<BuildError>> = (0..n).map(|_| None).collect();
        let mut stops: Vec<Option<Box<dyn Fn() + Send + Sync>>> = (0..n).map(|_| None).collect();
        let mut first_failed: Option<usize> = None;
        let mut running = 0;
        let (opts, lexer, total) = (self.opts, self.lexer, self.total);
        let shared = &shared;
        std::thread::scope(|scope| {
            loop {
                while running < limit {
                    let next = (0..n).find(|&p| {
                        !started[p]
                            && first_failed.is_none_or(|f| p < f)
                            && deps[p].iter().all(|&d| ok[d])
                    });
                    let Some(p) = next else { break };
                    started[p] = true;
                    let Some(forked) = self.backend.fork() else {
                        errors[p] = Some(BuildError::Backend(BackendError::Other(
                            "the engine cannot build another stage now".into(),
                        )));
                        relay.done(p, false, self.out.sink);
                        first_failed = Some(first_failed.map_or(p, |f| f.min(p)));
                        break;
                    };
                    stops[p] = Some(forked.stop);
                    running += 1;
                    let index = needed[p];
                    let tx = tx.clone();
                    let context = self.context.clone();
                    let args = self.args.clone();
                    let cache_from = self.cache_from.clone();
                    let step = first_step[p];
                    scope.spawn(move || {
                        let mut backend = forked.backend;
                        let mut sink = Forward { pos: p, tx };
                        let mut b = Builder {
                            opts,
                            backend: &mut *backend,
                            out: Output {
                                sink: &mut sink,
                                quiet: opts.quiet,
                                pending: Vec::new(),
                            },
                            context,
                            lexer,
                            args,
                            finished: Vec::new(),
                            step,
                            total,
                            cache_from,
                            shared: Some(shared),
                            current: index,
                        };
                        // A panic must still end the stage for the build's thread, which waits for it.
                        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            b.build_stage(staged, index, graph, meta_env, index == target)
                        }))
                        .unwrap_or_else(|_| {
                            Err(BuildError::Invalid(format!(
                                "building stage {index} failed: its thread panicked"
                            )))
                        });
                        match (&result, b.finished.pop()) {
                            (Ok(()), Some(f)) => shared.finished(f),
                            _ => shared.failed(index),
                        }
                        let args = std::mem::take(&mut b.args);
                        drop(b);
                        // The fork cleans up before the build's thread hears of the end.
                        drop(backend);
                        let _ = sink.tx.send(Msg::Done(p, result, Box::new(args)));
                    });
                }
                if running == 0 {
                    break;
                }
                // This thread holds a sender: the receive ends only with a message.
                let Ok(msg) = rx.recv() else { break };
                match msg {
                    Msg::Event(p, event) => relay.event(p, event, self.out.sink),
                    Msg::Done(p, result, args) => {
                        running -= 1;
                        stops[p] = None;
                        match result {
                            Ok(()) => {
                                ok[p] = true;
                                self.args.merge_referenced(&args);
                                relay.done(p, true, self.out.sink);
                            }
                            Err(e) => {
                                errors[p] = Some(e);
                                relay.done(p, false, self.out.sink);
                                if first_failed.is_none_or(|f| p < f) {
                                    first_failed = Some(p);
                                    shared.stop_after(needed[p]);
                                    for stop in stops.iter().skip(p + 1).flatten() {
                                        stop();
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(e);
        }
        let mut finished = std::mem::take(&mut shared.lock().finished);
        finished.sort_by_key(|f| f.index);
        if finished.len() != n {
            return Err(BuildError::Invalid("a stage was not built".into()));
        }
        self.finished = finished;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<String>);

    impl ProgressSink for Collect {
        fn stream(&mut self, text: &str) {
            self.0.push(text.to_owned());
        }
        fn aux_id(&mut self, id: &str) {
            self.0.push(format!("aux {id}"));
        }
    }

    fn text(s: &str) -> Event {
        Event::Stream(s.to_owned())
    }

    #[test]
    fn later_stages_wait_for_their_turn() {
        let mut sink = Collect::default();
        let mut r = Relay::new(3);
        r.event(0, text("a1"), &mut sink);
        r.event(2, text("c1"), &mut sink);
        r.event(1, text("b1"), &mut sink);
        assert_eq!(sink.0, ["a1"]);
        r.event(2, Event::Aux("c".into()), &mut sink);
        r.done(2, true, &mut sink);
        assert_eq!(sink.0, ["a1"]);
        r.event(0, text("a2"), &mut sink);
        r.done(0, true, &mut sink);
        // Stage 1's held output goes out, then it is live.
        assert_eq!(sink.0, ["a1", "a2", "b1"]);
        r.event(1, text("b2"), &mut sink);
        assert_eq!(sink.0, ["a1", "a2", "b1", "b2"]);
        r.done(1, true, &mut sink);
        assert_eq!(sink.0, ["a1", "a2", "b1", "b2", "c1", "aux c"]);
    }

    #[test]
    fn nothing_after_a_failed_stage_is_sent() {
        let mut sink = Collect::default();
        let mut r = Relay::new(3);
        r.event(1, text("b1"), &mut sink);
        r.done(1, false, &mut sink);
        r.event(2, text("c1"), &mut sink);
        r.done(2, false, &mut sink);
        r.event(0, text("a1"), &mut sink);
        assert_eq!(sink.0, ["a1"]);
        r.done(0, true, &mut sink);
        assert_eq!(sink.0, ["a1", "b1"]);
        r.event(2, text("c2"), &mut sink);
        assert_eq!(sink.0, ["a1", "b1"]);
    }

    #[test]
    fn an_earlier_failure_hides_later_stages() {
        let mut sink = Collect::default();
        let mut r = Relay::new(2);
        r.event(1, text("b1"), &mut sink);
        r.done(1, true, &mut sink);
        r.event(0, text("a1"), &mut sink);
        r.done(0, false, &mut sink);
        assert_eq!(sink.0, ["a1"]);
    }

    fn staged(src: &str) -> (StagedFile, StageGraph) {
        let df = crate::parser::parse(src).unwrap_or_else(|e| panic!("parse: {e}"));
        let staged =
            crate::instructions::parse_stages(&df).unwrap_or_else(|e| panic!("stages: {e}"));
        let graph = StageGraph::build(&staged, &|s| Ok(s.to_string()))
            .unwrap_or_else(|e| panic!("graph: {e}"));
        (staged, graph)
    }

    #[test]
    fn stages_that_start_alike_are_built_in_turn() {
        let (s, g) = staged(
            "FROM busybox AS a\nRUN echo a\n\
             FROM busybox AS b\nRUN echo b\n\
             FROM busybox AS c\nRUN echo a\nRUN echo c\n\
             FROM scratch\nCOPY --from=a /a /\nCOPY --from=b /b /\nCOPY --from=c /c /\n",
        );
        let needed = g.needed(3);
        assert_eq!(needed, [0, 1, 2, 3]);
        let deps = schedule(&s, &g, &needed);
        assert_eq!(deps, vec![vec![], vec![], vec![0], vec![0, 1, 2]]);
        assert!(has_concurrency(&deps));
        let (s, g) = staged("FROM busybox AS a\nRUN echo a\nFROM a\nRUN echo b\n");
        let deps = schedule(&s, &g, &[0, 1]);
        assert_eq!(deps, vec![vec![], vec![0]]);
        assert!(!has_concurrency(&deps));
    }

    #[test]
    fn a_stage_named_through_a_variable_waits_for_every_earlier_one() {
        let (s, g) = staged(
            "FROM busybox AS a\nRUN echo a\nFROM busybox AS b\nRUN echo b\n\
             FROM busybox\nARG S=a\nCOPY --from=$S /a /\n",
        );
        let deps = schedule(&s, &g, &[0, 1, 2]);
        assert_eq!(deps[2], vec![0, 1]);
    }
}
