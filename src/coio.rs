//! coio: a small pool of worker threads that run blocking calls for fibers.
//!
//! Owned by the TX thread (the pool handle); the workers own nothing but the job they run.
//! A fiber that needs a blocking call (file I/O in `fio`, name resolution) submits a job and
//! waits; the worker runs it and sends the output back through the TX inbox, where the loop
//! turns it into Lua values and resumes the fiber. So TX itself never blocks on the disk.

use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender, TrySendError};

use crate::constants::{COIO_QUEUE_CAPACITY, COIO_THREADS};
use crate::fiber::FiberId;
use crate::tx::{TxMsg, TxSender};

/// What a finished job hands back: a conversion into Lua values, run on the TX thread.
pub type CoioOutput =
    Box<dyn FnOnce(&mlua::Lua) -> mlua::Result<mlua::MultiValue> + Send + 'static>;

/// A job: the blocking call, run on a worker.
pub type CoioJob = Box<dyn FnOnce() -> CoioOutput + Send + 'static>;

/// A job and the fiber that waits for it.
struct Task {
    fiber: FiberId,
    job: CoioJob,
}

/// The pool handle kept by TX. Workers start with the first job, so a process that never
/// needs them (or daemonizes with `background`, which only one thread survives) has none.
pub struct CoioPool {
    inbox: TxSender,
    jobs: Option<Sender<Task>>,
    workers: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl CoioPool {
    /// A pool whose workers will send their results to `inbox`.
    pub fn new(inbox: TxSender) -> CoioPool {
        CoioPool {
            inbox,
            jobs: None,
            workers: Vec::new(),
            stopped: false,
        }
    }

    /// Whether worker threads exist.
    pub fn started(&self) -> bool {
        !self.workers.is_empty()
    }

    fn start(&mut self) -> std::io::Result<()> {
        let (jobs, queue) = channel::bounded::<Task>(COIO_QUEUE_CAPACITY);
        for n in 0..COIO_THREADS {
            let queue = queue.clone();
            let inbox = self.inbox.clone();
            let worker = std::thread::Builder::new()
                .name(format!("coio/{n}"))
                .spawn(move || coio_worker(queue, inbox))?;
            self.workers.push(worker);
        }
        self.jobs = Some(jobs);
        Ok(())
    }

    /// Queue a job for `fiber`. Gives the job back when the queue is full (the fiber then
    /// yields and tries again) or the pool cannot run.
    pub fn submit(&mut self, fiber: FiberId, job: CoioJob) -> Result<(), CoioJob> {
        if self.jobs.is_none() && !self.stopped && self.start().is_err() {
            return Err(job);
        }
        let Some(jobs) = &self.jobs else {
            return Err(job);
        };
        match jobs.try_send(Task { fiber, job }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(task) | TrySendError::Disconnected(task)) => Err(task.job),
        }
    }

    /// Stop accepting jobs and wait for the workers to finish what they hold.
    pub fn stop(&mut self) {
        self.stopped = true;
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn coio_worker(queue: channel::Receiver<Task>, inbox: TxSender) {
    crate::log::set_cord("coio");
    for task in queue {
        let output = (task.job)();
        // TX gone means shutdown: nobody waits for the answer any more.
        if inbox
            .send(TxMsg::CoioDone {
                fiber: task.fiber,
                output,
            })
            .is_err()
        {
            break;
        }
    }
}
