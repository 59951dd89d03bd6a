//! Standard input for the interactive console: a thread with a line editor.
//!
//! The `Stdin` handle is owned by the TX thread; the `stdin` thread owns the line editor
//! (rustyline on a terminal, plain line reads otherwise). TX asks for one line at a time with
//! a prompt; the thread reads it (blocking, which TX must never do) and sends it back through
//! the inbox. While the editor waits on a terminal, log lines go through its printer, so
//! messages from fibers and other threads appear above the prompt instead of inside the
//! line being typed.

use std::collections::VecDeque;
use std::io::{self, BufRead, IsTerminal, Write};

use crossbeam::channel::{self, Sender};

use crate::constants::CONSOLE_HISTORY_MAX;
use crate::fiber::FiberId;
use crate::tx::{StdinEvent, TxMsg, TxSender};

/// A request to the stdin thread: read a line after printing this prompt.
struct ReadRequest {
    prompt: String,
}

/// What `Stdin::read` gave.
#[derive(Debug, PartialEq)]
pub enum StdinRead {
    Event(StdinEvent),
    /// A read is under way; the fiber is woken when it completes.
    Wait,
}

/// TX's handle on the stdin thread.
#[derive(Default)]
pub struct Stdin {
    requests: Option<Sender<ReadRequest>>,
    /// Events read but not yet taken by the console fiber.
    events: VecDeque<StdinEvent>,
    /// A read request is out.
    pending: bool,
    /// The fiber waiting for the pending read.
    reader: Option<FiberId>,
}

impl Stdin {
    /// Take the next line, or start reading one with `prompt` and park `fiber`.
    pub fn read(
        &mut self,
        fiber: FiberId,
        prompt: &str,
        inbox: &TxSender,
    ) -> io::Result<StdinRead> {
        if let Some(event) = self.events.pop_front() {
            return Ok(StdinRead::Event(event));
        }
        if !self.pending {
            let requests = match &self.requests {
                Some(requests) => requests.clone(),
                None => self.start(inbox.clone())?,
            };
            let request = ReadRequest {
                prompt: prompt.to_string(),
            };
            if requests.send(request).is_err() {
                return Ok(StdinRead::Event(StdinEvent::Eof));
            }
            self.pending = true;
        }
        self.reader = Some(fiber);
        Ok(StdinRead::Wait)
    }

    /// Whether the stdin thread exists.
    pub fn started(&self) -> bool {
        self.requests.is_some()
    }

    /// An event came from the thread; returns the fiber to wake.
    pub fn on_event(&mut self, event: StdinEvent) -> Option<FiberId> {
        self.pending = false;
        self.events.push_back(event);
        self.reader.take()
    }

    fn start(&mut self, inbox: TxSender) -> io::Result<Sender<ReadRequest>> {
        let (requests, queue) = channel::bounded::<ReadRequest>(1);
        std::thread::Builder::new()
            .name(String::from("stdin"))
            .spawn(move || stdin_thread(queue, inbox))?;
        self.requests = Some(requests.clone());
        Ok(requests)
    }
}

fn stdin_thread(queue: channel::Receiver<ReadRequest>, inbox: TxSender) {
    crate::log::set_cord("stdin");
    let mut reader: Box<dyn LineReader> = if io::stdin().is_terminal() {
        match EditorReader::new() {
            Ok(editor) => Box::new(editor),
            Err(_) => Box::new(PlainReader),
        }
    } else {
        Box::new(PlainReader)
    };
    for request in queue {
        let event = reader.read(&request.prompt);
        let last = event == StdinEvent::Eof;
        if inbox.send(TxMsg::Stdin(event)).is_err() || last {
            break;
        }
    }
    crate::log::set_printer(None);
}

/// A way to read one line with a prompt.
trait LineReader {
    fn read(&mut self, prompt: &str) -> StdinEvent;
}

/// Lines from a pipe or file: the prompt is printed, the line read as is.
struct PlainReader;

impl LineReader for PlainReader {
    fn read(&mut self, prompt: &str) -> StdinEvent {
        let mut stdout = io::stdout();
        let _ = stdout.write_all(prompt.as_bytes());
        let _ = stdout.flush();
        let mut line = String::new();
        match io::stdin().lock().read_line(&mut line) {
            Ok(0) | Err(_) => StdinEvent::Eof,
            Ok(_) => {
                let trimmed = line.trim_end_matches(['\n', '\r']);
                StdinEvent::Line(trimmed.to_string())
            }
        }
    }
}

/// A terminal: line editing and history through rustyline.
struct EditorReader {
    editor: rustyline::DefaultEditor,
    history_path: Option<std::path::PathBuf>,
}

impl EditorReader {
    fn new() -> rustyline::Result<EditorReader> {
        let config = rustyline::Config::builder()
            .max_history_size(CONSOLE_HISTORY_MAX)?
            .auto_add_history(true)
            .build();
        let mut editor = rustyline::DefaultEditor::with_config(config)?;
        if let Ok(mut printer) = editor.create_external_printer() {
            use rustyline::ExternalPrinter;
            crate::log::set_printer(Some(Box::new(move |text: String| {
                let _ = printer.print(text);
            })));
        }
        let history_path = std::env::var_os("HOME")
            .map(|home| std::path::Path::new(&home).join(".tarantula_history"));
        if let Some(path) = &history_path {
            let _ = editor.load_history(path);
        }
        Ok(EditorReader {
            editor,
            history_path,
        })
    }
}

impl LineReader for EditorReader {
    fn read(&mut self, prompt: &str) -> StdinEvent {
        crate::log::set_prompt_active(true);
        let result = self.editor.readline(prompt);
        crate::log::set_prompt_active(false);
        match result {
            Ok(line) => {
                if let Some(path) = &self.history_path {
                    let _ = self.editor.append_history(path);
                }
                StdinEvent::Line(line)
            }
            Err(rustyline::error::ReadlineError::Interrupted) => StdinEvent::Interrupted,
            Err(_) => StdinEvent::Eof,
        }
    }
}
