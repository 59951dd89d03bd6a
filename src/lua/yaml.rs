//! The `yaml` Lua module (`encode`, `decode`, `NULL`, `cfg`, `new`) and the console's reply
//! formatter, over libyaml (the `unsafe-libyaml` port) so that the bytes are libyaml's own:
//! block and flow styles, quoting, folding at 80 columns, anchors and aliases.
//!
//! Runs on the TX thread, which owns the Lua state.
//!
//! On top of libyaml, Tarantool 2.6's lyaml decides a few things itself, and so do we:
//! strings Lua reads as numbers and the words `true false yes no null ~` are single-quoted;
//! strings that are not valid, printable UTF-8 become `!!binary` base64; every string inside
//! a flow collection (`__serialize = 'seq'`/`'map'`, e.g. tuples) is single-quoted; a string
//! with an empty line uses the literal block style. Everything else is libyaml's choice.
//!
//! ```text
//!   Lua value ─▶ Context::field ─▶ Dumper ─▶ events ─▶ Emitter (libyaml) ─▶ bytes
//!                                     └──▶ FlowTracker (libyaml's event queue, mirrored)
//!   bytes ─▶ Parser (libyaml) ─▶ events ─▶ Loader ─▶ Lua values, one per document
//! ```

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_void};
use std::io::Write as _;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::rc::Rc;

use base64::Engine as _;
use mlua::{Lua, MultiValue, Table, Value};
use unsafe_libyaml as unsafe_yaml;

use super::serializer::{self, Context, Field, SerializerCfg, SharedCfg, error};

/// The tag of base64-encoded binary strings.
const BINARY_TAG: &CStr = c"tag:yaml.org,2002:binary";

/// The prefix of the standard tags `load_scalar` understands (`!!str`, `!!int`...).
const STANDARD_TAG_PREFIX: &[u8] = b"tag:yaml.org,2002:";

/// libyaml's line width. Tarantool asks for 2, which libyaml (anything at most twice the
/// indent) turns into 80; we say 80 directly.
const LINE_WIDTH: i32 = 80;

/// The scalar styles we ask libyaml for; it may still pick another one when ours cannot
/// represent the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScalarStyle {
    /// Let libyaml choose (plain when it can).
    Any,
    /// Quoted, so that it reads back as a string.
    SingleQuoted,
    /// `|` block, for text with empty lines.
    Literal,
}

impl ScalarStyle {
    /// The libyaml value.
    fn raw(self) -> unsafe_yaml::yaml_scalar_style_t {
        match self {
            ScalarStyle::Any => unsafe_yaml::YAML_ANY_SCALAR_STYLE,
            ScalarStyle::SingleQuoted => unsafe_yaml::YAML_SINGLE_QUOTED_SCALAR_STYLE,
            ScalarStyle::Literal => unsafe_yaml::YAML_LITERAL_SCALAR_STYLE,
        }
    }
}

// {{{ libyaml emitter: the safe layer

/// An initialized libyaml emitter writing into a byte vector.
///
/// Invariants: `raw` was initialized by `yaml_emitter_initialize` and is deleted exactly once,
/// in `Drop`; it lives in a `Box`, so its address (which libyaml never stores, but events
/// point into its buffers) does not change. `output` comes from `Box::into_raw` and is freed
/// in `Drop`; libyaml writes to it only during `emit` calls, while we hold `&mut self`.
struct Emitter {
    /// The emitter state.
    raw: Box<MaybeUninit<unsafe_yaml::yaml_emitter_t>>,
    /// Where libyaml's output goes (freed in `Drop`).
    output: *mut Vec<u8>,
}

/// libyaml's output callback: appends the flushed bytes to the vector behind `data`.
///
/// # Safety
/// `data` is the `output` pointer of a live `Emitter`; `buffer` holds `size` readable bytes.
unsafe fn append_output(data: *mut c_void, buffer: *mut u8, size: u64) -> i32 {
    // SAFETY: the caller contract above; the vector is not otherwise borrowed while libyaml
    // runs inside `Emitter::emit`.
    let output = unsafe { &mut *data.cast::<Vec<u8>>() };
    // SAFETY: libyaml passes its own buffer and the number of bytes it filled.
    let bytes = unsafe { std::slice::from_raw_parts(buffer, size as usize) };
    output.extend_from_slice(bytes);
    1
}

impl Emitter {
    /// An emitter configured as Tarantool configures it: unicode, indent 2, width 80, `\n`.
    fn new() -> mlua::Result<Emitter> {
        let mut raw = Box::new(MaybeUninit::<unsafe_yaml::yaml_emitter_t>::uninit());
        // SAFETY: `raw` is valid, writable memory for an emitter; initialize fills it in.
        if unsafe { unsafe_yaml::yaml_emitter_initialize(raw.as_mut_ptr()) }.fail {
            return Err(error("yaml.encode: cannot create an emitter"));
        }
        let output = Box::into_raw(Box::new(Vec::new()));
        let mut emitter = Emitter { raw, output };
        let pointer = emitter.pointer();
        // SAFETY: the emitter is initialized; the output pointer stays valid until Drop.
        unsafe {
            unsafe_yaml::yaml_emitter_set_unicode(pointer, true);
            unsafe_yaml::yaml_emitter_set_indent(pointer, 2);
            unsafe_yaml::yaml_emitter_set_width(pointer, LINE_WIDTH);
            unsafe_yaml::yaml_emitter_set_break(pointer, unsafe_yaml::YAML_LN_BREAK);
            unsafe_yaml::yaml_emitter_set_output(pointer, append_output, output.cast());
        }
        Ok(emitter)
    }

    /// The emitter for libyaml calls.
    fn pointer(&mut self) -> *mut unsafe_yaml::yaml_emitter_t {
        self.raw.as_mut_ptr()
    }

    /// Hands an initialized event to libyaml, which owns it from then on (it frees the event
    /// itself, even when emitting fails).
    fn emit(&mut self, mut event: unsafe_yaml::yaml_event_t) -> mlua::Result<()> {
        let pointer = self.pointer();
        // SAFETY: the emitter is initialized and `event` was initialized by libyaml.
        if unsafe { unsafe_yaml::yaml_emitter_emit(pointer, &mut event) }.ok {
            return Ok(());
        }
        Err(error(format!("yaml.encode: {}", self.problem())))
    }

    /// libyaml's description of the last emitter error.
    fn problem(&self) -> String {
        // SAFETY: the emitter is initialized and not borrowed elsewhere; `problem` is NULL or
        // a static C string.
        let problem = unsafe { self.raw.assume_init_ref() }.problem;
        if problem.is_null() {
            return "emitter error".to_string();
        }
        // SAFETY: a non-NULL `problem` points to a NUL-terminated static string.
        unsafe { CStr::from_ptr(problem) }
            .to_string_lossy()
            .into_owned()
    }

    /// Initializes an event with `init` and emits it; `init` returns libyaml's status.
    fn emit_with(
        &mut self,
        init: impl FnOnce(*mut unsafe_yaml::yaml_event_t) -> bool,
    ) -> mlua::Result<bool> {
        let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
        if !init(event.as_mut_ptr()) {
            return Ok(false);
        }
        // SAFETY: `init` succeeded, so libyaml filled the event in.
        self.emit(unsafe { event.assume_init() })?;
        Ok(true)
    }

    /// Starts the (UTF-8) stream.
    fn stream_start(&mut self) -> mlua::Result<()> {
        // SAFETY: `event` is writable memory for one event.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_stream_start_event_initialize(event, unsafe_yaml::YAML_UTF8_ENCODING)
                .ok
        })?;
        self.expect(done)
    }

    /// Ends the stream.
    fn stream_end(&mut self) -> mlua::Result<()> {
        // SAFETY: as in `stream_start`.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_stream_end_event_initialize(event).ok
        })?;
        self.expect(done)
    }

    /// An explicit `---`.
    fn document_start(&mut self) -> mlua::Result<()> {
        let (version, tags) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: no version or tag directives: NULL pointers are libyaml's "none".
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_document_start_event_initialize(event, version, tags, tags, false).ok
        })?;
        self.expect(done)
    }

    /// An explicit `...`.
    fn document_end(&mut self) -> mlua::Result<()> {
        // SAFETY: as in `stream_start`.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_document_end_event_initialize(event, false).ok
        })?;
        self.expect(done)
    }

    /// A scalar. `Ok(false)` when libyaml refuses `value` (it checks for valid UTF-8 more
    /// strictly than the printable check) so that the caller can fall back to `!!binary`.
    fn scalar(
        &mut self,
        tag: Option<&CStr>,
        value: &[u8],
        style: ScalarStyle,
    ) -> mlua::Result<bool> {
        let Ok(length) = i32::try_from(value.len()) else {
            return Err(error("yaml.encode: string is too long"));
        };
        let tag_pointer = tag.map_or(std::ptr::null(), |tag| tag.as_ptr().cast::<u8>());
        let implicit = tag.is_none();
        // SAFETY: `value` holds `length` readable bytes (a non-NULL pointer even when empty);
        // `tag` is NULL or NUL-terminated; libyaml copies both before returning.
        self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_scalar_event_initialize(
                event,
                std::ptr::null(),
                tag_pointer,
                value.as_ptr(),
                length,
                implicit,
                implicit,
                style.raw(),
            )
            .ok
        })
    }

    /// `[` or a block sequence, with an optional anchor.
    fn sequence_start(&mut self, anchor: Option<&CStr>, flow: bool) -> mlua::Result<()> {
        let anchor = anchor.map_or(std::ptr::null(), |anchor| anchor.as_ptr().cast::<u8>());
        let style = if flow {
            unsafe_yaml::YAML_FLOW_SEQUENCE_STYLE
        } else {
            unsafe_yaml::YAML_BLOCK_SEQUENCE_STYLE
        };
        // SAFETY: `anchor` is NULL or NUL-terminated; libyaml copies it.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_sequence_start_event_initialize(
                event,
                anchor,
                std::ptr::null(),
                true,
                style,
            )
            .ok
        })?;
        self.expect(done)
    }

    /// Ends the sequence.
    fn sequence_end(&mut self) -> mlua::Result<()> {
        // SAFETY: as in `stream_start`.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_sequence_end_event_initialize(event).ok
        })?;
        self.expect(done)
    }

    /// `{` or a block mapping, with an optional anchor.
    fn mapping_start(&mut self, anchor: Option<&CStr>, flow: bool) -> mlua::Result<()> {
        let anchor = anchor.map_or(std::ptr::null(), |anchor| anchor.as_ptr().cast::<u8>());
        let style = if flow {
            unsafe_yaml::YAML_FLOW_MAPPING_STYLE
        } else {
            unsafe_yaml::YAML_BLOCK_MAPPING_STYLE
        };
        // SAFETY: as in `sequence_start`.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_mapping_start_event_initialize(
                event,
                anchor,
                std::ptr::null(),
                true,
                style,
            )
            .ok
        })?;
        self.expect(done)
    }

    /// Ends the mapping.
    fn mapping_end(&mut self) -> mlua::Result<()> {
        // SAFETY: as in `stream_start`.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_mapping_end_event_initialize(event).ok
        })?;
        self.expect(done)
    }

    /// `*anchor`.
    fn alias(&mut self, anchor: &CStr) -> mlua::Result<()> {
        let anchor = anchor.as_ptr().cast::<u8>();
        // SAFETY: `anchor` is NUL-terminated; libyaml copies it.
        let done = self.emit_with(|event| unsafe {
            unsafe_yaml::yaml_alias_event_initialize(event, anchor).ok
        })?;
        self.expect(done)
    }

    /// A failed event initialization as an error.
    fn expect(&self, done: bool) -> mlua::Result<()> {
        if done {
            return Ok(());
        }
        Err(error("yaml.encode: cannot create an event"))
    }

    /// Flushes libyaml's buffer and returns everything written.
    fn finish(mut self) -> mlua::Result<Vec<u8>> {
        let pointer = self.pointer();
        // SAFETY: the emitter is initialized.
        if unsafe { unsafe_yaml::yaml_emitter_flush(pointer) }.fail {
            return Err(error(format!("yaml.encode: {}", self.problem())));
        }
        // SAFETY: `output` is valid until Drop and libyaml is not running.
        Ok(std::mem::take(unsafe { &mut *self.output }))
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        let pointer = self.pointer();
        // SAFETY: initialized in `new`, deleted only here; deleting frees queued events too.
        unsafe { unsafe_yaml::yaml_emitter_delete(pointer) };
        // SAFETY: `output` came from `Box::into_raw` in `new` and is freed only here.
        drop(unsafe { Box::from_raw(self.output) });
    }
}

// }}}

// {{{ libyaml parser: the safe layer

/// An initialized libyaml parser reading `input`.
///
/// Invariants: `raw` was initialized by `yaml_parser_initialize` and is deleted exactly once,
/// in `Drop`; it is boxed because libyaml keeps a pointer to the parser itself as the data
/// of its string reader. The borrow of `input` keeps the bytes alive and unchanged while
/// libyaml reads them.
struct Parser<'input> {
    /// The parser state.
    raw: Box<MaybeUninit<unsafe_yaml::yaml_parser_t>>,
    /// The bytes the parser reads.
    input: PhantomData<&'input [u8]>,
}

/// Where and why libyaml could not parse the input.
#[derive(Debug)]
struct ParseProblem {
    /// libyaml's description, if it gave one.
    problem: Option<String>,
    /// Zero-based line and column of the problem.
    mark: (u64, u64),
    /// libyaml's context ("while parsing a flow node") with its zero-based position.
    context: Option<(String, u64, u64)>,
}

/// One parsed event, freed when dropped.
///
/// Invariant: `raw` was filled by a successful `yaml_parser_parse` and is deleted once.
struct ParsedEvent {
    /// The event filled in by libyaml.
    raw: unsafe_yaml::yaml_event_t,
}

/// A static C string of libyaml, if any.
fn static_text(text: *const std::ffi::c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: libyaml's problem and context strings are NUL-terminated literals.
    Some(
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned(),
    )
}

impl<'input> Parser<'input> {
    /// A parser reading `input`.
    fn new(input: &'input [u8]) -> mlua::Result<Parser<'input>> {
        let mut raw = Box::new(MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit());
        // SAFETY: `raw` is valid, writable memory for a parser.
        if unsafe { unsafe_yaml::yaml_parser_initialize(raw.as_mut_ptr()) }.fail {
            return Err(error("yaml.decode: cannot create a parser"));
        }
        let mut parser = Parser {
            raw,
            input: PhantomData,
        };
        let pointer = parser.raw.as_mut_ptr();
        // SAFETY: the parser is initialized and boxed; `input` outlives it ('input).
        unsafe {
            unsafe_yaml::yaml_parser_set_input_string(pointer, input.as_ptr(), input.len() as u64)
        };
        Ok(parser)
    }

    /// The next event, or libyaml's description of why there is none.
    fn next(&mut self) -> Result<ParsedEvent, ParseProblem> {
        let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
        let pointer = self.raw.as_mut_ptr();
        // SAFETY: the parser is initialized; `event` is writable memory for one event.
        if unsafe { unsafe_yaml::yaml_parser_parse(pointer, event.as_mut_ptr()) }.ok {
            // SAFETY: a successful parse filled the event in.
            return Ok(ParsedEvent {
                raw: unsafe { event.assume_init() },
            });
        }
        // SAFETY: the parser is initialized and libyaml is not running; its error fields are
        // plain data.
        let parser = unsafe { self.raw.assume_init_ref() };
        Err(ParseProblem {
            problem: static_text(parser.problem),
            mark: (parser.problem_mark.line, parser.problem_mark.column),
            context: static_text(parser.context).map(|context| {
                (
                    context,
                    parser.context_mark.line,
                    parser.context_mark.column,
                )
            }),
        })
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        let pointer = self.raw.as_mut_ptr();
        // SAFETY: initialized in `new`, deleted only here.
        unsafe { unsafe_yaml::yaml_parser_delete(pointer) };
    }
}

/// NUL-terminated bytes of libyaml, if the pointer is not NULL.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated string that outlives the result.
unsafe fn c_bytes<'a>(text: *const u8) -> Option<&'a [u8]> {
    if text.is_null() {
        return None;
    }
    // SAFETY: the caller contract.
    Some(unsafe { CStr::from_ptr(text.cast()) }.to_bytes())
}

impl ParsedEvent {
    /// The event type.
    fn kind(&self) -> unsafe_yaml::yaml_event_type_t {
        self.raw.type_
    }

    /// The scalar's value, tag and plainness (only for scalar events).
    fn scalar(&self) -> (&[u8], Option<&[u8]>, bool) {
        debug_assert_eq!(self.kind(), unsafe_yaml::YAML_SCALAR_EVENT);
        // SAFETY: this is a scalar event, so the `scalar` member is the active one; its value
        // holds `length` bytes and lives as long as the event.
        unsafe {
            let scalar = self.raw.data.scalar;
            let value = if scalar.value.is_null() {
                &[][..]
            } else {
                std::slice::from_raw_parts(scalar.value, scalar.length as usize)
            };
            (
                value,
                c_bytes(scalar.tag),
                scalar.style == unsafe_yaml::YAML_PLAIN_SCALAR_STYLE,
            )
        }
    }

    /// The anchor of a scalar, sequence or mapping start, or the target of an alias.
    fn anchor(&self) -> Option<Vec<u8>> {
        // SAFETY: the member read matches the event type; anchors are NUL-terminated strings
        // owned by the event.
        let anchor = unsafe {
            match self.kind() {
                unsafe_yaml::YAML_SCALAR_EVENT => c_bytes(self.raw.data.scalar.anchor),
                unsafe_yaml::YAML_SEQUENCE_START_EVENT => {
                    c_bytes(self.raw.data.sequence_start.anchor)
                }
                unsafe_yaml::YAML_MAPPING_START_EVENT => {
                    c_bytes(self.raw.data.mapping_start.anchor)
                }
                unsafe_yaml::YAML_ALIAS_EVENT => c_bytes(self.raw.data.alias.anchor),
                _ => None,
            }
        };
        anchor.map(<[u8]>::to_vec)
    }
}

impl Drop for ParsedEvent {
    fn drop(&mut self) {
        // SAFETY: the event was filled by the parser and is deleted only here.
        unsafe { unsafe_yaml::yaml_event_delete(&mut self.raw) };
    }
}

// }}}

// {{{ Flow tracking: libyaml's event queue, mirrored

/// What the queue mirror needs to know about an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueuedEvent {
    /// STREAM-START
    StreamStart,
    /// STREAM-END
    StreamEnd,
    /// DOCUMENT-START
    DocumentStart,
    /// DOCUMENT-END
    DocumentEnd,
    /// SEQUENCE-START with the style asked for.
    SequenceStart {
        /// Flow style asked for.
        flow: bool,
    },
    /// SEQUENCE-END
    SequenceEnd,
    /// MAPPING-START with the style asked for.
    MappingStart {
        /// Flow style asked for.
        flow: bool,
    },
    /// MAPPING-END
    MappingEnd,
    /// A scalar or an alias.
    Node,
}

impl QueuedEvent {
    /// +1 for starts, -1 for ends, as `yaml_emitter_need_more_events` counts.
    fn level_change(self) -> i32 {
        match self {
            QueuedEvent::StreamStart
            | QueuedEvent::DocumentStart
            | QueuedEvent::SequenceStart { .. }
            | QueuedEvent::MappingStart { .. } => 1,
            QueuedEvent::StreamEnd
            | QueuedEvent::DocumentEnd
            | QueuedEvent::SequenceEnd
            | QueuedEvent::MappingEnd => -1,
            QueuedEvent::Node => 0,
        }
    }
}

/// Answers lyaml's question "is the string about to be emitted inside a flow collection?"
/// the way lyaml answers it: libyaml's `flow_level` is above zero, or an unprocessed event in
/// libyaml's queue starts a flow collection. libyaml processes events lazily (a collection
/// start waits for up to three more events) and raises `flow_level` only when it processes
/// the event after a flow start, so both lag behind what we have emitted: Tarantool prints
/// `[{'k': v}]` for a flow array holding a block map. We replay libyaml's queue rules
/// (`yaml_emitter_need_more_events` and the flow states) on this mirror.
#[derive(Debug, Default)]
struct FlowTracker {
    /// Events emitted but not yet processed by libyaml.
    queue: std::collections::VecDeque<QueuedEvent>,
    /// libyaml's `flow_level`.
    flow_level: u32,
    /// A flow collection was processed; its first item (or end) is not processed yet.
    opening: bool,
    /// For each processed, still open collection: whether libyaml writes it in flow style.
    open: Vec<bool>,
}

impl FlowTracker {
    /// Whether lyaml's `yaml_is_flow_mode` would say yes now.
    fn in_flow(&self) -> bool {
        self.flow_level > 0
            || self.queue.iter().any(|event| {
                matches!(
                    event,
                    QueuedEvent::SequenceStart { flow: true }
                        | QueuedEvent::MappingStart { flow: true }
                )
            })
    }

    /// An event handed to libyaml: queue it and process what libyaml would.
    fn push(&mut self, event: QueuedEvent) {
        self.queue.push_back(event);
        while !self.needs_more() {
            self.process_head();
        }
    }

    /// `yaml_emitter_need_more_events`.
    fn needs_more(&self) -> bool {
        let Some(head) = self.queue.front() else {
            return true;
        };
        let accumulate = match head {
            QueuedEvent::DocumentStart => 1,
            QueuedEvent::SequenceStart { .. } => 2,
            QueuedEvent::MappingStart { .. } => 3,
            _ => return false,
        };
        if self.queue.len() > accumulate {
            return false;
        }
        let mut level = 0;
        for event in &self.queue {
            level += event.level_change();
            if level == 0 {
                return false;
            }
        }
        true
    }

    /// The effect on `flow_level` of libyaml processing the head event.
    fn process_head(&mut self) {
        let Some(event) = self.queue.pop_front() else {
            return;
        };
        if self.opening {
            self.opening = false;
            self.flow_level += 1;
        }
        match event {
            QueuedEvent::SequenceStart { flow } | QueuedEvent::MappingStart { flow } => {
                let empty = matches!(
                    (event, self.queue.front()),
                    (
                        QueuedEvent::SequenceStart { .. },
                        Some(QueuedEvent::SequenceEnd)
                    ) | (
                        QueuedEvent::MappingStart { .. },
                        Some(QueuedEvent::MappingEnd)
                    )
                );
                let flow_mode = self.flow_level > 0 || flow || empty;
                self.open.push(flow_mode);
                self.opening = flow_mode;
            }
            QueuedEvent::SequenceEnd | QueuedEvent::MappingEnd if self.open.pop() == Some(true) => {
                self.flow_level = self.flow_level.saturating_sub(1);
            }
            _ => {}
        }
    }
}

// }}}

// {{{ Strings: Tarantool's decisions before libyaml's

/// Tarantool's `utf8_check_printable`: valid UTF-8 (no overlong forms) whose non-ASCII
/// characters libyaml prints unescaped or ICU calls printable. ASCII control characters pass
/// (libyaml escapes them in double quotes); C1 controls, surrogates, the BOM and
/// non-characters do not, and such strings are emitted as `!!binary`.
fn is_printable_utf8(text: &[u8]) -> bool {
    let mut at = 0;
    while at < text.len() {
        let lead = text[at];
        let (width, mut value) = match lead {
            0x00..=0x7f => (1, u32::from(lead)),
            _ if lead & 0xe0 == 0xc0 => (2, u32::from(lead & 0x1f)),
            _ if lead & 0xf0 == 0xe0 => (3, u32::from(lead & 0x0f)),
            _ if lead & 0xf8 == 0xf0 => (4, u32::from(lead & 0x07)),
            _ => return false,
        };
        let Some(sequence) = text.get(at..at + width) else {
            return false;
        };
        for &byte in &sequence[1..] {
            if byte & 0xc0 != 0x80 {
                return false;
            }
            value = (value << 6) | u32::from(byte & 0x3f);
        }
        let shortest = match width {
            1 => true,
            2 => value >= 0x80,
            3 => value >= 0x800,
            _ => value >= 0x10000,
        };
        if !shortest || width > 1 && !is_printable_char(sequence, value) {
            return false;
        }
        at += width;
    }
    true
}

/// One non-ASCII character: libyaml's `IS_PRINTABLE` ranges, else ICU's `u_isprint`.
fn is_printable_char(sequence: &[u8], value: u32) -> bool {
    let second = sequence.get(1).copied().unwrap_or(0);
    let third = sequence.get(2).copied().unwrap_or(0);
    let libyaml = match sequence[0] {
        0xc2 => second >= 0xa0,
        0xc3..=0xec => true,
        0xed => second < 0xa0,
        0xee => true,
        // Everything but the BOM (U+FEFF) and the non-characters U+FFFE, U+FFFF.
        0xef => {
            !(second == 0xbb && third == 0xbf || second == 0xbf && matches!(third, 0xbe | 0xbf))
        }
        _ => false,
    };
    libyaml || sequence.len() == 4 && is_printable_supplementary(value)
}

/// ICU's `u_isprint` (general category not C*) above U+FFFF, approximated without Unicode
/// tables: planes 1-3 are printable except their few format characters and non-characters;
/// plane 14 only for its variation selectors; the unassigned planes 4-13 and the private-use
/// planes 15-16 are not. (Unassigned code points of planes 1-3 count as printable here,
/// where ICU says no: libyaml then escapes them in double quotes instead of `!!binary`.)
fn is_printable_supplementary(value: u32) -> bool {
    if value > 0x10ffff || value & 0xfffe == 0xfffe {
        return false;
    }
    match value >> 16 {
        1..=3 => !matches!(
            value,
            0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a
        ),
        14 => (0xe0100..=0xe01ef).contains(&value),
        _ => false,
    }
}

/// lyaml's `yaml_is_null` and `yaml_is_bool`: the words that read back as null or booleans.
fn is_special_word(text: &[u8]) -> bool {
    matches!(text, b"~" | b"null" | b"true" | b"false" | b"yes" | b"no")
}

/// Whether the text, as far as C's `strstr` sees it (up to a NUL), has an empty line.
fn has_empty_line(text: &[u8]) -> bool {
    let visible = text
        .iter()
        .position(|&byte| byte == 0)
        .map_or(text, |end| &text[..end]);
    visible.windows(2).any(|pair| pair == b"\n\n")
}

/// What to do with a string: a requested style, or `!!binary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StringForm {
    /// A text scalar in this style.
    Text(ScalarStyle),
    /// `!!binary` base64.
    Binary,
}

/// Tarantool's choice for a string (the caller knows whether it is inside a flow
/// collection, as libyaml's queue says).
fn string_form(text: &[u8], in_flow: bool) -> StringForm {
    if is_special_word(text) || serializer::lua_string_is_number(text) {
        StringForm::Text(ScalarStyle::SingleQuoted)
    } else if !is_printable_utf8(text) {
        StringForm::Binary
    } else if in_flow {
        StringForm::Text(ScalarStyle::SingleQuoted)
    } else if has_empty_line(text) {
        StringForm::Text(ScalarStyle::Literal)
    } else {
        StringForm::Text(ScalarStyle::Any)
    }
}

// }}}

// {{{ Encoding

/// How often a table occurs in the value being dumped (lyaml's anchor table).
enum Anchor {
    /// Seen once: no anchor.
    Once,
    /// Seen again: gets an anchor at its first dump.
    Repeated,
    /// Dumped under this anchor: later dumps are aliases.
    Named(CString),
}

/// What to emit for a table with respect to anchors.
enum AnchorUse {
    /// No anchor.
    None,
    /// Dump the table under this new anchor.
    Define(CString),
    /// Emit an alias instead of the table.
    Alias(CString),
}

/// Walks Lua values and emits them, one document per value.
struct Dumper<'c, 'lua> {
    /// The options and helpers of this call.
    context: &'c Context<'lua>,
    /// libyaml.
    emitter: Emitter,
    /// The mirror of libyaml's queue.
    flow: FlowTracker,
    /// Per document: every table reachable from the value, keyed by identity.
    anchors: HashMap<*const c_void, Anchor>,
    /// The next anchor number (per document).
    anchor_next: u32,
    /// `encode_max_depth`, capped.
    depth_max: usize,
    /// Scratch space for the text of numbers, booleans and nulls.
    number_text: Vec<u8>,
}

/// Encodes `values` as one YAML stream, one document each, with the options of `context`.
pub fn encode_documents(context: &Context<'_>, values: &[Value]) -> mlua::Result<Vec<u8>> {
    let mut dumper = Dumper {
        context,
        emitter: Emitter::new()?,
        flow: FlowTracker::default(),
        anchors: HashMap::new(),
        anchor_next: 0,
        depth_max: context.cfg.encode_depth_max(),
        number_text: Vec::with_capacity(32),
    };
    dumper.event(QueuedEvent::StreamStart)?;
    for value in values {
        dumper.anchors.clear();
        dumper.anchor_next = 0;
        dumper.find_references(value, 0)?;
        dumper.event(QueuedEvent::DocumentStart)?;
        dumper.dump(value.clone(), 0)?;
        dumper.event(QueuedEvent::DocumentEnd)?;
    }
    dumper.event(QueuedEvent::StreamEnd)?;
    dumper.emitter.finish()
}

impl Dumper<'_, '_> {
    /// Emits a structural event without an anchor and tells the flow mirror.
    fn event(&mut self, event: QueuedEvent) -> mlua::Result<()> {
        match event {
            QueuedEvent::StreamStart => self.emitter.stream_start()?,
            QueuedEvent::StreamEnd => self.emitter.stream_end()?,
            QueuedEvent::DocumentStart => self.emitter.document_start()?,
            QueuedEvent::DocumentEnd => self.emitter.document_end()?,
            QueuedEvent::SequenceEnd => self.emitter.sequence_end()?,
            QueuedEvent::MappingEnd => self.emitter.mapping_end()?,
            QueuedEvent::SequenceStart { flow } => self.emitter.sequence_start(None, flow)?,
            QueuedEvent::MappingStart { flow } => self.emitter.mapping_start(None, flow)?,
            QueuedEvent::Node => return Err(error("yaml.encode: a node needs a value")),
        }
        self.flow.push(event);
        Ok(())
    }

    /// Marks tables seen more than once (lyaml's `find_references`), values before keys.
    fn find_references(&mut self, value: &Value, depth: usize) -> mlua::Result<()> {
        let Value::Table(table) = value else {
            return Ok(());
        };
        if depth > self.depth_max {
            return Ok(());
        }
        match self.anchors.get_mut(&table.to_pointer()) {
            Some(anchor @ Anchor::Once) => {
                *anchor = Anchor::Repeated;
                return Ok(());
            }
            Some(_) => return Ok(()),
            None => {
                self.anchors.insert(table.to_pointer(), Anchor::Once);
            }
        }
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            self.find_references(&value, depth + 1)?;
            self.find_references(&key, depth + 1)?;
        }
        Ok(())
    }

    /// Names a repeated table on its first dump; later dumps become aliases.
    fn anchor_for(&mut self, table: &Table) -> AnchorUse {
        match self.anchors.get_mut(&table.to_pointer()) {
            Some(anchor @ Anchor::Repeated) => {
                let name = CString::new(self.anchor_next.to_string()).unwrap_or_default();
                self.anchor_next += 1;
                *anchor = Anchor::Named(name.clone());
                AnchorUse::Define(name)
            }
            Some(Anchor::Named(name)) => AnchorUse::Alias(name.clone()),
            _ => AnchorUse::None,
        }
    }

    /// Emits `value`, which sits `depth` containers deep.
    fn dump(&mut self, value: Value, depth: usize) -> mlua::Result<()> {
        let precision = self.context.cfg.number_precision();
        // Number text goes through one buffer reused for the whole dump.
        let mut text = std::mem::take(&mut self.number_text);
        text.clear();
        match self.context.field(value)? {
            Field::Nil => text.extend_from_slice(b"null"),
            Field::Bool(flag) => text.extend_from_slice(if flag { b"true" } else { b"false" }),
            Field::UInt(integer) => {
                let _ = write!(text, "{integer}");
            }
            Field::Int(integer) => {
                let _ = write!(text, "{integer}");
            }
            Field::Float(float) => serializer::write_g(&mut text, f64::from(float), precision),
            Field::Double(double) => serializer::write_g(&mut text, double, precision),
            Field::Str(string) => return self.string(&string.as_bytes()),
            Field::Array {
                table,
                len,
                compact,
            } => return self.array(&table, len, compact, depth),
            Field::Map { table, compact, .. } => return self.map(&table, compact, depth),
        }
        let result = self.plain(&text);
        self.number_text = text;
        result
    }

    /// A plain scalar (numbers, booleans, null).
    fn plain(&mut self, text: &[u8]) -> mlua::Result<()> {
        if !self.emitter.scalar(None, text, ScalarStyle::Any)? {
            return Err(error("yaml.encode: cannot create an event"));
        }
        self.flow.push(QueuedEvent::Node);
        Ok(())
    }

    /// A string, in the style Tarantool picks.
    fn string(&mut self, text: &[u8]) -> mlua::Result<()> {
        let emitted = match string_form(text, self.flow.in_flow()) {
            StringForm::Text(style) => self.emitter.scalar(None, text, style)?,
            StringForm::Binary => false,
        };
        if !emitted {
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            if !self
                .emitter
                .scalar(Some(BINARY_TAG), encoded.as_bytes(), ScalarStyle::Any)?
            {
                return Err(error("yaml.encode: cannot create an event"));
            }
        }
        self.flow.push(QueuedEvent::Node);
        Ok(())
    }

    /// Tables past the depth limit: an error, or null with `encode_deep_as_nil`.
    fn too_deep(&mut self) -> mlua::Result<()> {
        if self.context.cfg.encode_deep_as_nil {
            return self.plain(b"null");
        }
        Err(error("Too high nest level"))
    }

    /// The anchor to define, or `None` after emitting an alias instead of the table.
    fn start_anchor(&mut self, table: &Table) -> mlua::Result<Option<Option<CString>>> {
        match self.anchor_for(table) {
            AnchorUse::None => Ok(Some(None)),
            AnchorUse::Define(name) => Ok(Some(Some(name))),
            AnchorUse::Alias(name) => {
                self.emitter.alias(&name)?;
                self.flow.push(QueuedEvent::Node);
                Ok(None)
            }
        }
    }

    /// A sequence of `table[1..=len]`, holes as null.
    fn array(&mut self, table: &Table, len: usize, flow: bool, depth: usize) -> mlua::Result<()> {
        if depth >= self.depth_max {
            return self.too_deep();
        }
        let Some(anchor) = self.start_anchor(table)? else {
            return Ok(());
        };
        self.emitter.sequence_start(anchor.as_deref(), flow)?;
        self.flow.push(QueuedEvent::SequenceStart { flow });
        for index in 1..=len {
            let item: Value = table.raw_get(index)?;
            self.dump(item, depth + 1)?;
        }
        self.event(QueuedEvent::SequenceEnd)
    }

    /// A mapping of every pair.
    fn map(&mut self, table: &Table, flow: bool, depth: usize) -> mlua::Result<()> {
        if depth >= self.depth_max {
            return self.too_deep();
        }
        let Some(anchor) = self.start_anchor(table)? else {
            return Ok(());
        };
        self.emitter.mapping_start(anchor.as_deref(), flow)?;
        self.flow.push(QueuedEvent::MappingStart { flow });
        for pair in table.pairs::<Value, Value>() {
            let (key, value) = pair?;
            self.dump(key, depth + 1)?;
            self.dump(value, depth + 1)?;
        }
        self.event(QueuedEvent::MappingEnd)
    }
}

// }}}

// {{{ Decoding

/// Builds Lua values from parser events (lyaml's loader).
struct Loader<'c, 'lua, 'input> {
    /// The options and helpers of this call.
    context: &'c Context<'lua>,
    /// libyaml.
    parser: Parser<'input>,
    /// Anchor name → value, for the current document.
    anchors: Table,
    /// Documents started so far (for messages).
    document_count: usize,
    /// `decode_max_depth`, capped.
    depth_max: usize,
}

/// Decodes every document of `input`: one value per document (none for an empty stream).
pub fn decode_documents(context: &Context<'_>, input: &[u8]) -> mlua::Result<MultiValue> {
    let mut loader = Loader {
        context,
        parser: Parser::new(input)?,
        anchors: context.lua.create_table()?,
        document_count: 0,
        depth_max: context.cfg.decode_depth_max(),
    };
    loader.load()
}

impl Loader<'_, '_, '_> {
    /// The next event, parse errors in lyaml's words.
    fn next(&mut self) -> mlua::Result<ParsedEvent> {
        self.parser
            .next()
            .map_err(|problem| error(self.problem_message(&problem)))
    }

    /// lyaml's error text: problem, document number, position and context (1-based).
    fn problem_message(&self, problem: &ParseProblem) -> String {
        let mut message = format!(
            "{} at document: {}",
            problem.problem.as_deref().unwrap_or("A problem"),
            self.document_count
        );
        let (line, column) = problem.mark;
        if line != 0 || column != 0 {
            message.push_str(&format!(", line: {}, column: {}\n", line + 1, column + 1));
        } else {
            message.push('\n');
        }
        if let Some((context, line, column)) = &problem.context {
            message.push_str(&format!(
                "{context} at line: {}, column: {}\n",
                line + 1,
                column + 1
            ));
        }
        message
    }

    /// Every document of the stream.
    fn load(&mut self) -> mlua::Result<MultiValue> {
        let mut documents = MultiValue::new();
        if self.next()?.kind() != unsafe_yaml::YAML_STREAM_START_EVENT {
            return Err(error("expected STREAM_START_EVENT"));
        }
        loop {
            if self.next()?.kind() == unsafe_yaml::YAML_STREAM_END_EVENT {
                return Ok(documents);
            }
            self.document_count += 1;
            // lyaml reports any failure to read the root's first event (a parse error
            // included) as an unexpected end; failures deeper down keep their own text.
            let root = match self.next() {
                Ok(event) if !matches!(event.kind(), unsafe_yaml::YAML_NO_EVENT) => {
                    self.node(event, 0)?
                }
                _ => None,
            };
            let Some(value) = root else {
                return Err(error("unexpected END event"));
            };
            if self.next()?.kind() != unsafe_yaml::YAML_DOCUMENT_END_EVENT {
                return Err(error("expected DOCUMENT_END_EVENT"));
            }
            documents.push_back(value);
            self.anchors = self.context.lua.create_table()?;
        }
    }

    /// The next node, or `None` at the end of the enclosing collection or document.
    fn load_node(&mut self, depth: usize) -> mlua::Result<Option<Value>> {
        let event = self.next()?;
        self.node(event, depth)
    }

    /// The node that `event` starts, or `None` for an end event.
    fn node(&mut self, event: ParsedEvent, depth: usize) -> mlua::Result<Option<Value>> {
        match event.kind() {
            unsafe_yaml::YAML_DOCUMENT_END_EVENT
            | unsafe_yaml::YAML_MAPPING_END_EVENT
            | unsafe_yaml::YAML_SEQUENCE_END_EVENT => Ok(None),
            unsafe_yaml::YAML_MAPPING_START_EVENT => {
                let anchor = event.anchor();
                drop(event);
                self.load_map(anchor, depth).map(Some)
            }
            unsafe_yaml::YAML_SEQUENCE_START_EVENT => {
                let anchor = event.anchor();
                drop(event);
                self.load_sequence(anchor, depth).map(Some)
            }
            unsafe_yaml::YAML_SCALAR_EVENT => self.load_scalar(&event).map(Some),
            unsafe_yaml::YAML_ALIAS_EVENT => self.load_alias(&event).map(Some),
            unsafe_yaml::YAML_NO_EVENT => Err(error("libyaml returned YAML_NO_EVENT")),
            _ => Err(error("invalid event")),
        }
    }

    /// An error past `decode_max_depth`.
    fn check_depth(&self, depth: usize) -> mlua::Result<()> {
        if depth < self.depth_max {
            return Ok(());
        }
        Err(error(format!(
            "Found too many nested data structures ({}) at document: {}",
            depth + 1,
            self.document_count
        )))
    }

    /// Registers `value` under its anchor, if any.
    fn remember(&self, anchor: Option<Vec<u8>>, value: &Value) -> mlua::Result<()> {
        if let Some(anchor) = anchor {
            self.anchors
                .raw_set(self.context.lua.create_string(anchor)?, value.clone())?;
        }
        Ok(())
    }

    /// A mapping, after its start event.
    fn load_map(&mut self, anchor: Option<Vec<u8>>, depth: usize) -> mlua::Result<Value> {
        self.check_depth(depth)?;
        let table = self.context.lua.create_table_with_capacity(0, 5)?;
        self.context.mark_map(&table)?;
        let value = Value::Table(table.clone());
        self.remember(anchor, &value)?;
        while let Some(key) = self.load_node(depth + 1)? {
            let Some(item) = self.load_node(depth + 1)? else {
                return Err(error("unanticipated END event"));
            };
            serializer::set_decoded(&table, key, item)?;
        }
        Ok(value)
    }

    /// A sequence, after its start event.
    fn load_sequence(&mut self, anchor: Option<Vec<u8>>, depth: usize) -> mlua::Result<Value> {
        self.check_depth(depth)?;
        let table = self.context.lua.create_table_with_capacity(5, 0)?;
        self.context.mark_array(&table)?;
        let value = Value::Table(table.clone());
        self.remember(anchor, &value)?;
        let mut index = 0;
        while let Some(item) = self.load_node(depth + 1)? {
            index += 1;
            table.raw_set(index, item)?;
        }
        Ok(value)
    }

    /// The value an alias names.
    fn load_alias(&mut self, event: &ParsedEvent) -> mlua::Result<Value> {
        let anchor = event.anchor().unwrap_or_default();
        let value: Value = self
            .anchors
            .raw_get(self.context.lua.create_string(&anchor)?)?;
        if value.is_nil() {
            return Err(error(format!(
                "invalid reference: {}",
                String::from_utf8_lossy(&anchor)
            )));
        }
        Ok(value)
    }

    /// lyaml's `load_scalar`: standard tags first, then the plain-scalar words and numbers,
    /// else a string. Only values that end up strings register their anchor, as in lyaml.
    fn load_scalar(&mut self, event: &ParsedEvent) -> mlua::Result<Value> {
        let (text, tag, plain) = event.scalar();
        if let Some(value) = self.tagged_scalar(text, tag)? {
            return Ok(value);
        }
        if plain && let Some(value) = self.plain_scalar(text)? {
            return Ok(value);
        }
        let value = Value::String(self.context.lua.create_string(text)?);
        self.remember(event.anchor(), &value)?;
        Ok(value)
    }

    /// A scalar with a standard tag (`!!str`, `!!int`...).
    fn tagged_scalar(&self, text: &[u8], tag: Option<&[u8]>) -> mlua::Result<Option<Value>> {
        let Some(suffix) = tag.and_then(|tag| tag.strip_prefix(STANDARD_TAG_PREFIX)) else {
            return Ok(None);
        };
        let lua = self.context.lua;
        Ok(Some(match suffix {
            b"str" => Value::String(lua.create_string(text)?),
            b"int" => Value::Number(serializer::c_number::strtoll(text).0 as f64),
            b"float" => self
                .context
                .double_value(serializer::c_number::strtod(text).0)?,
            b"bool" => Value::Boolean(text == b"true" || text == b"yes"),
            b"binary" => Value::String(lua.create_string(decode_base64(text))?),
            _ => return Ok(None),
        }))
    }

    /// A plain scalar: null, booleans, integers, floats; `None` for strings.
    fn plain_scalar(&self, text: &[u8]) -> mlua::Result<Option<Value>> {
        let context = self.context;
        Ok(Some(match text {
            b"~" | b"null" => context.null(),
            b"true" | b"yes" => Value::Boolean(true),
            b"false" | b"no" => Value::Boolean(false),
            b"" => Value::String(context.lua.create_string("")?),
            _ => {
                let (signed, used) = serializer::c_number::strtoll(text);
                if used == text.len() && signed != i64::MAX {
                    return context.int_value(signed).map(Some);
                }
                let (unsigned, used) = serializer::c_number::strtoull(text);
                if used == text.len() {
                    return context.uint_value(unsigned).map(Some);
                }
                let (double, used) = serializer::c_number::strtod(text);
                if used == text.len() {
                    return context.double_value(double).map(Some);
                }
                return Ok(None);
            }
        }))
    }
}

/// Base64 as Tarantool decodes it for `!!binary`: characters outside the alphabet (spaces,
/// line breaks, padding, garbage) are skipped; a trailing partial byte is dropped.
fn decode_base64(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for &byte in text {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        bits = (bits << 6) | u32::from(sextet);
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
        }
    }
    out
}

// }}}

// {{{ The Lua module

/// Opens the `yaml` module (the caller puts it into `package.loaded`).
pub fn open(lua: &Lua) -> mlua::Result<Table> {
    new_module(lua, SerializerCfg::with_compact(true))
}

/// A module instance with its own options: `yaml` itself and each `yaml.new()`.
fn new_module(lua: &Lua, cfg: SerializerCfg) -> mlua::Result<Table> {
    let shared: SharedCfg = Rc::new(std::cell::Cell::new(cfg));
    let module = serializer::module_table(lua, &shared)?;
    let encode_cfg = Rc::clone(&shared);
    let encode = serializer::lua_function(lua, move |lua, args| {
        let values: Vec<Value> = args.into_iter().collect();
        let context = Context::new(lua, encode_cfg.get())?;
        let bytes = encode_documents(&context, &values)?;
        Ok(MultiValue::from_iter([Value::String(
            lua.create_string(bytes)?,
        )]))
    })?;
    module.raw_set("encode", encode)?;
    let decode_cfg = Rc::clone(&shared);
    let decode = serializer::lua_function(lua, move |lua, args| {
        let input = match args.into_iter().next() {
            Some(Value::String(text)) => text.as_bytes().to_vec(),
            Some(Value::Integer(integer)) => integer.to_string().into_bytes(),
            Some(Value::Number(number)) => serializer::number_to_string(number),
            _ => {
                return Err(error(
                    "Usage: yaml.decode(document, [{tag_only = boolean}])",
                ));
            }
        };
        let context = Context::new(lua, decode_cfg.get())?;
        decode_documents(&context, &input)
    })?;
    module.raw_set("decode", decode)?;
    let new = serializer::lua_function(lua, |lua, _| {
        let module = new_module(lua, SerializerCfg::with_compact(true))?;
        Ok(MultiValue::from_iter([Value::Table(module)]))
    })?;
    module.raw_set("new", new)?;
    Ok(module)
}

/// The options of Tarantool's console formatter (`yaml.new()` with these `cfg` changes):
/// unsupported values print as their `tostring()`, bad numbers as-is.
fn console_cfg() -> SerializerCfg {
    SerializerCfg {
        encode_invalid_numbers: true,
        encode_load_metatables: true,
        encode_use_tostring: true,
        encode_invalid_as_nil: true,
        ..SerializerCfg::with_compact(true)
    }
}

/// The console's reply for the values a statement returned, as Tarantool's console formats
/// them: `---\n...\n` for no values, else one document holding the array of the values,
/// with nils as `null`. When a value cannot be encoded, the reply is the error document
/// `console: an exception occurred when formatting the output: <message>`.
pub fn console_reply(lua: &Lua, values: &[Value]) -> mlua::Result<String> {
    if values.is_empty() {
        return Ok("---\n...\n".to_string());
    }
    let context = Context::new(lua, console_cfg())?;
    let null = context.null();
    let items = values.iter().map(|value| {
        if value.is_nil() {
            null.clone()
        } else {
            value.clone()
        }
    });
    let array = lua.create_sequence_from(items)?;
    match encode_documents(&context, &[Value::Table(array)]) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(err) => {
            let message = format!(
                "console: an exception occurred when formatting the output: {}",
                serializer::error_message(&err)
            );
            console_error_reply(lua, Value::String(lua.create_string(message)?))
        }
    }
}

/// The console's reply for an error: `- error: <message>` (a nil error prints `null`).
pub fn console_error_reply(lua: &Lua, error_value: Value) -> mlua::Result<String> {
    let context = Context::new(lua, console_cfg())?;
    let error_value = if error_value.is_nil() {
        context.null()
    } else {
        error_value
    };
    let item = lua.create_table()?;
    item.raw_set("error", error_value)?;
    let array = lua.create_sequence_from([item])?;
    let bytes = encode_documents(&context, &[Value::Table(array)])?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

// }}}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::serializer::tests::new_lua;

    /// A Lua state with `yaml` in `package.loaded`.
    fn lua_with_yaml() -> Lua {
        let lua = new_lua();
        let module = open(&lua).unwrap();
        let loaded: Table = lua.load("return package.loaded").eval().unwrap();
        loaded.set("yaml", module).unwrap();
        lua.load("yaml = require('yaml') box = {NULL = yaml.NULL}")
            .exec()
            .unwrap();
        lua
    }

    /// `yaml.encode(<expression>)`.
    fn encode(lua: &Lua, expression: &str) -> String {
        lua.load(format!("return yaml.encode({expression})"))
            .eval::<String>()
            .unwrap_or_else(|err| panic!("{expression}: {err}"))
    }

    /// What the console sends for a statement returning `expression`.
    fn console(lua: &Lua, expression: &str) -> String {
        let values: MultiValue = lua
            .load(format!("return {expression}"))
            .eval()
            .unwrap_or_else(|err| panic!("{expression}: {err}"));
        let values: Vec<Value> = values.into_iter().collect();
        console_reply(lua, &values).unwrap()
    }

    /// The console reply for one value, as OBSERVED prints it after `tarantool> `.
    fn item(lua: &Lua, expression: &str) -> String {
        console(lua, expression)
    }

    #[test]
    fn observed_basic_values() {
        let lua = lua_with_yaml();
        assert_eq!(console(&lua, "1 + 2"), "---\n- 3\n...\n");
        assert_eq!(console(&lua, "nil"), "---\n- null\n...\n");
        assert_eq!(
            console(&lua, "1, \"two\", true"),
            "---\n- 1\n- two\n- true\n...\n"
        );
        assert_eq!(console_reply(&lua, &[]).unwrap(), "---\n...\n");
        assert_eq!(
            console(&lua, "{1, 2, {a = 1}}"),
            "---\n- - 1\n  - 2\n  - a: 1\n...\n"
        );
        assert_eq!(console(&lua, "{}"), "---\n- []\n...\n");
        let map = console(&lua, "{a = 1, b = \"s\", c = {true, false}}");
        assert!(
            map.starts_with("---\n- ") && map.ends_with("...\n"),
            "{map}"
        );
        for line in ["a: 1\n", "b: s\n", "c:\n  - true\n  - false\n"] {
            assert!(map.contains(line), "{map}");
        }
        assert_eq!(console(&lua, "{1, {a=1}}"), "---\n- - 1\n  - a: 1\n...\n");
        assert_eq!(
            console(&lua, "'x: y', 'a #b'"),
            "---\n- 'x: y'\n- 'a #b'\n...\n"
        );
        assert_eq!(console(&lua, "1, 'a'"), "---\n- 1\n- a\n...\n");
        assert_eq!(console(&lua, "'x'"), "---\n- x\n...\n");
    }

    #[test]
    fn observed_strings() {
        let lua = lua_with_yaml();
        let cases: &[(&str, &str)] = &[
            ("[[it's]]", "- it's"),
            ("[[say \"hi\"]]", "- say \"hi\""),
            ("'a: b'", "- 'a: b'"),
            ("'multi\\nline'", "- 'multi\n\n  line'"),
            ("''", "-"),
            ("'123'", "- '123'"),
            ("'yes'", "- 'yes'"),
            ("'null'", "- 'null'"),
            ("'true'", "- 'true'"),
            ("' lead space'", "- ' lead space'"),
            ("'#hash'", "- '#hash'"),
            ("'-dash'", "- -dash"),
            ("'x'..'y'", "- xy"),
            ("\"it's\"", "- it's"),
            ("'back\\\\slash'", "- back\\slash"),
            ("'tab\\there'", "- \"tab\\there\""),
            ("'ünï'", "- ünï"),
            ("'a,b'", "- a,b"),
            ("'[x]'", "- '[x]'"),
            ("'{x}'", "- '{x}'"),
            ("'x: '", "- 'x: '"),
            ("'~'", "- '~'"),
            ("'1.5'", "- '1.5'"),
            ("'0x10'", "- '0x10'"),
            ("'@at'", "- '@at'"),
            ("'%pct'", "- '%pct'"),
            ("'*star'", "- '*star'"),
            ("'&amp'", "- '&amp'"),
            ("'!bang'", "- '!bang'"),
            ("'|pipe'", "- '|pipe'"),
            ("'>gt'", "- '>gt'"),
            ("'\"dq'", "- '\"dq'"),
            ("'no'", "- 'no'"),
            ("'on'", "- on"),
            ("'Null'", "- Null"),
            ("'NULL'", "- NULL"),
            ("' '", "- ' '"),
            ("'trail '", "- 'trail '"),
            ("'True'", "- True"),
            ("'TRUE'", "- TRUE"),
            ("'false'", "- 'false'"),
            ("'off'", "- off"),
            ("'y'", "- y"),
            ("'n'", "- n"),
            ("'Yes'", "- Yes"),
            ("\"it's\" .. ':'", "- 'it''s:'"),
            ("'-'", "- '-'"),
            ("'- x'", "- '- x'"),
            ("'a #b'", "- 'a #b'"),
            ("'1e5'", "- '1e5'"),
            ("'.5'", "- '.5'"),
            ("'inf'", "- 'inf'"),
            ("'nan'", "- 'nan'"),
            ("'a\\0b'", "- \"a\\0b\""),
            ("'\\1'", "- \"\\x01\""),
        ];
        for (expression, expected) in cases {
            assert_eq!(
                item(&lua, expression),
                format!("---\n{expected}\n...\n"),
                "{expression}"
            );
        }
    }

    #[test]
    fn observed_errors_fold_at_80_columns() {
        let lua = lua_with_yaml();
        let error_of = |message: &str| {
            let message = Value::String(lua.create_string(message).unwrap());
            console_error_reply(&lua, message).unwrap()
        };
        assert_eq!(
            error_of(
                "[string \"return nosuchfunc()\"]:1: attempt to call global 'nosuchfunc' (a nil value)"
            ),
            "---\n- error: '[string \"return nosuchfunc()\"]:1: attempt to call global ''nosuchfunc''\n    (a nil value)'\n...\n"
        );
        assert_eq!(
            error_of(
                "[string \"return box.space.nonexistent:select{}\"]:1: attempt to index field 'nonexistent' (a nil value)"
            ),
            "---\n- error: '[string \"return box.space.nonexistent:select{}\"]:1: attempt to index field\n    ''nonexistent'' (a nil value)'\n...\n"
        );
        assert_eq!(error_of("x"), "---\n- error: x\n...\n");
        assert_eq!(
            error_of("Duplicate key exists in unique index 'primary' in space 'tester'"),
            "---\n- error: Duplicate key exists in unique index 'primary' in space 'tester'\n...\n"
        );
        assert_eq!(
            error_of(
                "Tuple field 1 type does not match one required by operation: expected unsigned"
            ),
            "---\n- error: 'Tuple field 1 type does not match one required by operation: expected unsigned'\n...\n"
        );
        assert_eq!(
            error_of("[string \"box.cfg{\"]:1: unexpected symbol near '<eof>'"),
            "---\n- error: '[string \"box.cfg{\"]:1: unexpected symbol near ''<eof>'''\n...\n"
        );
        assert_eq!(
            error_of("[string \"'sq'\"'\"''\"]:1: unexpected symbol near ''sq''"),
            "---\n- error: '[string \"''sq''\"''\"''''\"]:1: unexpected symbol near ''''sq'''''\n...\n"
        );
        assert_eq!(
            error_of("[string \"'it''s'\"]:1: unexpected symbol near ''it''"),
            "---\n- error: '[string \"''it''''s''\"]:1: unexpected symbol near ''''it'''''\n...\n"
        );
        assert_eq!(
            error_of("[string \"foo bar\"]:1: '=' expected near 'bar'"),
            "---\n- error: '[string \"foo bar\"]:1: ''='' expected near ''bar'''\n...\n"
        );
        assert_eq!(
            error_of(
                "Incorrect value for option 'memtx_memory': cannot decrease memory size at runtime"
            ),
            "---\n- error: 'Incorrect value for option ''memtx_memory'': cannot decrease memory size\n    at runtime'\n...\n"
        );
        let traceback = "builtin/box/load_cfg.lua:599: Please call box.cfg{} first\nstack traceback:\n\tbuiltin/box/load_cfg.lua:599: in function '__index'\n\t[string \"return box.space\"]:1: in main chunk\n\t[C]: in function 'pcall'\n\tbuiltin/box/console.lua:402: in function 'eval'\n\tbuiltin/box/console.lua:708: in function 'repl'\n\tbuiltin/box/console.lua:757: in function <builtin/box/console.lua:745>";
        assert_eq!(
            error_of(traceback),
            "---\n- error: \"builtin/box/load_cfg.lua:599: Please call box.cfg{} first\\nstack traceback:\\n\\tbuiltin/box/load_cfg.lua:599:\n    in function '__index'\\n\\t[string \\\"return box.space\\\"]:1: in main chunk\\n\\t[C]:\n    in function 'pcall'\\n\\tbuiltin/box/console.lua:402: in function 'eval'\\n\\tbuiltin/box/console.lua:708:\n    in function 'repl'\\n\\tbuiltin/box/console.lua:757: in function <builtin/box/console.lua:745>\"\n...\n"
        );
        assert_eq!(
            error_of("[string \"for\"]:1: '<name>' expected near '<eof>'"),
            "---\n- error: '[string \"for\"]:1: ''<name>'' expected near ''<eof>'''\n...\n"
        );
        assert_eq!(
            error_of("[string \"'s1' 's2'\"]:1: unexpected symbol near ''s1''"),
            "---\n- error: '[string \"''s1'' ''s2''\"]:1: unexpected symbol near ''''s1'''''\n...\n"
        );
        assert_eq!(
            error_of("[string \"for...\"]:2: unexpected symbol near '='"),
            "---\n- error: '[string \"for...\"]:2: unexpected symbol near ''='''\n...\n"
        );
        assert_eq!(
            error_of("No index #0 is defined in space 'X'"),
            "---\n- error: 'No index #0 is defined in space ''X'''\n...\n"
        );
        assert_eq!(
            error_of(
                "Incorrect value for option 'replication': expected host:service or /unix.socket"
            ),
            "---\n- error: 'Incorrect value for option ''replication'': expected host:service or /unix.socket'\n...\n"
        );
        assert_eq!(
            error_of("Illegal parameters, Usage: box.once(key, func, ...)"),
            "---\n- error: 'Illegal parameters, Usage: box.once(key, func, ...)'\n...\n"
        );
        assert_eq!(
            error_of("Space '999' does not exist"),
            "---\n- error: Space '999' does not exist\n...\n"
        );
        let table_error = lua.load("return {code = 1}").eval::<Value>().unwrap();
        assert_eq!(
            console_error_reply(&lua, table_error).unwrap(),
            "---\n- error:\n    code: 1\n...\n"
        );
    }

    #[test]
    fn observed_numbers() {
        let lua = lua_with_yaml();
        let cases: &[(&str, &str)] = &[
            ("1.5", "1.5"),
            ("-7", "-7"),
            ("1e100", "1e+100"),
            ("2^53", "9007199254740992"),
            ("2^63", "9223372036854775808"),
            ("0/0", "-nan"),
            ("1/0", "inf"),
            ("-1/0", "-inf"),
            ("12345678901234567", "12345678901234568"),
            ("100000000000000", "100000000000000"),
            ("1e15", "1000000000000000"),
            ("1e16", "10000000000000000"),
            ("0.1", "0.1"),
            ("1/3", "0.33333333333333"),
            (
                "tonumber64 and 0 or 18446744073709551615ULL",
                "18446744073709551615",
            ),
            ("-9223372036854775807LL - 1", "-9223372036854775808"),
            ("42ULL", "42"),
            ("true", "true"),
            ("false", "false"),
            ("box.NULL", "null"),
            ("2^64", "1.844674407371e+19"),
            ("-0.0", "0"),
        ];
        for (expression, expected) in cases {
            assert_eq!(
                item(&lua, expression),
                format!("---\n- {expected}\n...\n"),
                "{expression}"
            );
        }
        assert_eq!(
            console(&lua, "{box.NULL, nil, 3}"),
            "---\n- - null\n  - null\n  - 3\n...\n"
        );
        assert_eq!(
            console(&lua, "1/3, 2^53, 0/0"),
            "---\n- 0.33333333333333\n- 9007199254740992\n- -nan\n...\n"
        );
    }

    #[test]
    fn observed_flow_tuples() {
        let lua = lua_with_yaml();
        lua.load(
            "function tuple(t) \
                 local function mark(v) \
                     if type(v) == 'table' and getmetatable(v) == nil then \
                         for _, x in pairs(v) do mark(x) end \
                     end \
                 end \
                 mark(t) \
                 return setmetatable(t, {__serialize = 'seq'}) \
             end",
        )
        .exec()
        .unwrap();
        assert_eq!(
            console(
                &lua,
                "tuple{1, 'Hello', tuple{2, 'x', tuple{3}}, setmetatable({k = 'v'}, {__serialize = 'map'})}"
            ),
            "---\n- [1, 'Hello', [2, 'x', [3]], {'k': 'v'}]\n...\n"
        );
        assert_eq!(
            console(&lua, "tuple{2, \"it's\", 1.5, true, box.NULL}"),
            "---\n- [2, 'it''s', 1.5, true, null]\n...\n"
        );
        assert_eq!(
            console(
                &lua,
                "{tuple{1, 'Hello', tuple{2, 'x', tuple{3}}, setmetatable({k = 'v'}, {__serialize = 'map'})}, tuple{2, 'upd', 'ins'}}"
            ),
            "---\n- - [1, 'Hello', [2, 'x', [3]], {'k': 'v'}]\n  - [2, 'upd', 'ins']\n...\n"
        );
        assert_eq!(
            console(&lua, "tuple{1, 'a', tuple{2}}"),
            "---\n- [1, 'a', [2]]\n...\n"
        );
        assert_eq!(console(&lua, "tuple{}"), "---\n- []\n...\n");
        assert_eq!(
            console(
                &lua,
                "{tuple{'cluster', '7d82788b-7c44-4677-a479-f69bd9af69d6'}, tuple{'max_id', 512}, tuple{'onceinit'}}"
            ),
            "---\n- - ['cluster', '7d82788b-7c44-4677-a479-f69bd9af69d6']\n  - ['max_id', 512]\n  - ['onceinit']\n...\n"
        );
        // A plain table inside a flow array: libyaml's lagging queue decides, as in 2.6.
        assert_eq!(
            console(&lua, "tuple{{k = 'v'}}"),
            "---\n- [{'k': v}]\n...\n"
        );
        assert_eq!(encode(&lua, "tuple{{k = 'v'}}"), "--- [{'k': v}]\n...\n");
        assert_eq!(encode(&lua, "tuple{{'a', 'b'}}"), "--- [['a', b]]\n...\n");
        assert_eq!(
            encode(&lua, "tuple{1, {k = 'v'}}"),
            "--- [1, {'k': 'v'}]\n...\n"
        );
        assert_eq!(
            encode(&lua, "tuple{{{k = 'v'}}}"),
            "--- [[{k: 'v'}]]\n...\n"
        );
        assert_eq!(
            encode(
                &lua,
                "setmetatable({a = {'x', 'y'}}, {__serialize = 'map'})"
            ),
            "--- {'a': ['x', 'y']}\n...\n"
        );
        assert_eq!(
            encode(&lua, "{[tuple{'a'}] = 'b'}"),
            "---\n? ['a']\n: b\n...\n"
        );
        assert_eq!(encode(&lua, "{[{}] = 'b'}"), "---\n[]: b\n...\n");
        assert_eq!(encode(&lua, "tuple{tuple{}, 'x'}"), "--- [[], 'x']\n...\n");
        assert_eq!(
            encode(&lua, "tuple{'', 'tab\\t', 'a\\n\\nb', 'yes', 'Yes', 5}"),
            "--- ['', \"tab\\t\", 'a\n\n\n    b', 'yes', 'Yes', 5]\n...\n"
        );
        assert_eq!(encode(&lua, "tuple{1/0, -1/0}"), "--- [inf, -inf]\n...\n");
    }

    #[test]
    fn observed_vclock_and_maps_with_number_keys() {
        let lua = lua_with_yaml();
        let vclock = "setmetatable({[1] = 12}, {__serialize = 'map'})";
        assert_eq!(console(&lua, vclock), "---\n- {1: 12}\n...\n");
        assert_eq!(
            encode(&lua, &format!("{{vclock = {vclock}}}")),
            "---\nvclock: {1: 12}\n...\n"
        );
        assert_eq!(console(&lua, "{[1] = {id = 1}}"), "---\n- - id: 1\n...\n");
        assert_eq!(
            console(
                &lua,
                "setmetatable({[1] = {id = 1, lsn = 12}}, {__serialize = 'mapping'})"
            )
            .lines()
            .nth(1),
            Some("- 1:")
        );
        assert_eq!(encode(&lua, "{[12] = 1}"), "---\n12: 1\n...\n");
        assert_eq!(
            encode(&lua, "{[1] = 1, [30] = 3}").len(),
            "---\n1: 1\n30: 3\n...\n".len()
        );
        assert_eq!(
            encode(&lua, "{[1] = 1, [3] = 3}"),
            "---\n- 1\n- null\n- 3\n...\n"
        );
        assert_eq!(encode(&lua, "{[1.5] = 2.5}"), "---\n1.5: 2.5\n...\n");
        assert_eq!(encode(&lua, "{[-1] = 0/0}"), "---\n-1: -nan\n...\n");
        assert_eq!(encode(&lua, "{[true] = 1}"), "---\ntrue: 1\n...\n");
        assert_eq!(
            encode(&lua, "setmetatable({}, {__serialize = 'map'})"),
            "--- {}\n...\n"
        );
        assert_eq!(
            encode(&lua, "{setmetatable({}, {__serialize = 'map'}), 'x'}"),
            "---\n- {}\n- x\n...\n"
        );
    }

    #[test]
    fn observed_objects_and_info() {
        let lua = lua_with_yaml();
        assert_eq!(
            console(
                &lua,
                "{message = 'Tuple field 1 type does not match one required by operation: expected unsigned'}"
            ),
            "---\n- message: 'Tuple field 1 type does not match one required by operation: expected\n    unsigned'\n...\n"
        );
        assert_eq!(
            console(&lua, "{items_used_ratio = '6.94%'}"),
            "---\n- items_used_ratio: 6.94%\n...\n"
        );
        assert_eq!(
            console(&lua, "{file = './src/box/memtx_hash.c'}"),
            "---\n- file: ./src/box/memtx_hash.c\n...\n"
        );
        assert_eq!(
            console(&lua, "{listen = '3301'}"),
            "---\n- listen: '3301'\n...\n"
        );
        assert_eq!(
            console(&lua, "{feedback_host = 'https://feedback.tarantool.io'}"),
            "---\n- feedback_host: https://feedback.tarantool.io\n...\n"
        );
        assert_eq!(
            console(&lua, "{version = '2.6.0-0-g47aa4e01e'}"),
            "---\n- version: 2.6.0-0-g47aa4e01e\n...\n"
        );
        assert_eq!(
            console(&lua, "{slab_alloc_factor = 1.05}"),
            "---\n- slab_alloc_factor: 1.05\n...\n"
        );
        assert_eq!(
            console(&lua, "{checkpoint_wal_threshold = 1e18}"),
            "---\n- checkpoint_wal_threshold: 1000000000000000000\n...\n"
        );
        assert!(
            console(&lua, "{before_replace = print}")
                .starts_with("---\n- before_replace: 'function: ")
        );
        let index = console(
            &lua,
            "{unique = true, parts = {{type = 'unsigned', is_nullable = false, fieldno = 1}}, \
              id = 0, space_id = 512, type = 'HASH', name = 'primary'}",
        );
        for line in [
            "- ",
            "unique: true\n",
            "parts:\n  - ",
            "type: unsigned\n",
            "is_nullable: false\n",
            "fieldno: 1\n",
            "id: 0\n",
            "space_id: 512\n",
            "type: HASH\n",
            "name: primary\n",
        ] {
            assert!(index.contains(line), "{line:?} in {index}");
        }
        assert_eq!(
            console(&lua, "{replication = {[1] = {id = 1}}}"),
            "---\n- replication:\n  - id: 1\n...\n"
        );
        assert_eq!(
            console(&lua, "box.NULL, 'not created'"),
            "---\n- null\n- not created\n...\n"
        );
    }

    #[test]
    fn observed_help_uses_literal_block() {
        let lua = lua_with_yaml();
        let help = "To get help, see the Tarantool manual at https://tarantool.io/en/doc/\nTo start the interactive Tarantool tutorial, type 'tutorial()' here.\n\nAvailable backslash commands:\n\n  \\set language <language>   -- set language (lua or sql)\n  \\set output <format>       -- set output format (lua[,line|block] or yaml)\n  \\set delimiter <delimiter> -- set expression delimiter\n  \\help                      -- show this screen\n  \\quit                      -- quit interactive console\n";
        let value = lua.create_sequence_from([help]).unwrap();
        let reply = console_reply(&lua, &[Value::Table(value)]).unwrap();
        assert_eq!(
            reply,
            "---\n- - |\n    To get help, see the Tarantool manual at https://tarantool.io/en/doc/\n    To start the interactive Tarantool tutorial, type 'tutorial()' here.\n\n    Available backslash commands:\n\n      \\set language <language>   -- set language (lua or sql)\n      \\set output <format>       -- set output format (lua[,line|block] or yaml)\n      \\set delimiter <delimiter> -- set expression delimiter\n      \\help                      -- show this screen\n      \\quit                      -- quit interactive console\n...\n"
        );
        assert_eq!(encode(&lua, "'a\\n\\nb'"), "--- |-\n  a\n\n  b\n...\n");
        assert_eq!(encode(&lua, "{'a\\n\\nb'}"), "---\n- |-\n  a\n\n  b\n...\n");
        assert_eq!(encode(&lua, "'a\\0\\n\\nb'"), "--- \"a\\0\\n\\nb\"\n...\n");
    }

    #[test]
    fn observed_tcp_console_bytes() {
        let lua = lua_with_yaml();
        assert_eq!(console(&lua, "''"), "---\n-\n...\n");
        assert_eq!(
            console(&lua, "'multi\\nline'"),
            "---\n- 'multi\n\n  line'\n...\n"
        );
        assert_eq!(console(&lua, "box.NULL"), "---\n- null\n...\n");
        assert_eq!(console(&lua, "{}"), "---\n- []\n...\n");
        let function = console(&lua, "print");
        assert!(
            function.starts_with("---\n- 'function: ") && function.ends_with("'\n...\n"),
            "{function}"
        );
        assert_eq!(console(&lua, "{'x', ''}"), "---\n- - x\n  -\n...\n");
    }

    #[test]
    fn anchors_and_aliases() {
        let lua = lua_with_yaml();
        assert_eq!(
            encode(&lua, "(function() local t = {1} return {t, t} end)()"),
            "---\n- &0\n  - 1\n- *0\n...\n"
        );
        assert_eq!(
            encode(&lua, "(function() local r = {} r.self = r return r end)()"),
            "--- &0\nself: *0\n...\n"
        );
        let index = "(function() \
            local primary = {unique = true, id = 0} \
            return {index = setmetatable({[0] = primary, primary = primary}, {__serialize = 'mapping'})} end)()";
        let text = encode(&lua, index);
        assert!(
            text == "---\nindex:\n  0: &0\n    unique: true\n    id: 0\n  primary: *0\n...\n"
                || text
                    == "---\nindex:\n  0: &0\n    id: 0\n    unique: true\n  primary: *0\n...\n"
                || text.contains("primary: &0") && text.contains("0: *0"),
            "{text}"
        );
        assert_eq!(
            encode(
                &lua,
                "(function() local a, b = {1}, {2} return {a, b, a, b, b} end)()"
            ),
            "---\n- &0\n  - 1\n- &1\n  - 2\n- *0\n- *1\n- *1\n...\n"
        );
        let decoded: bool = lua
            .load("local t = yaml.decode('a: &x [1]\\nb: *x') return rawequal(t.a, t.b)")
            .eval()
            .unwrap();
        assert!(decoded);
        let round: bool = lua
            .load("local r = {} r.self = r local d = yaml.decode(yaml.encode(r)) return rawequal(d.self, d)")
            .eval()
            .unwrap();
        assert!(round);
    }

    #[test]
    fn binary_and_printable_strings() {
        let lua = lua_with_yaml();
        assert_eq!(encode(&lua, "'\\xff'"), "--- !!binary /w==\n...\n");
        assert_eq!(
            encode(&lua, "{'\\xff\\xfe'}"),
            "---\n- !!binary //4=\n...\n"
        );
        assert_eq!(encode(&lua, "'é'"), "--- é\n...\n");
        assert_eq!(encode(&lua, "'\\xc3'"), "--- !!binary ww==\n...\n");
        // Tarantool's older libyaml escapes characters above U+FFFF ("\U0001F600");
        // libyaml 0.2.5, which unsafe-libyaml ports, prints them as they are.
        assert_eq!(encode(&lua, "'😀'"), "--- 😀\n...\n");
        assert_eq!(encode(&lua, "{x = '😀'}"), "---\nx: 😀\n...\n");
        assert_eq!(encode(&lua, "'\\xc2\\x85'"), "--- !!binary woU=\n...\n");
        assert_eq!(
            encode(&lua, "'\\xef\\xbb\\xbfx'"),
            "--- !!binary 77u/eA==\n...\n"
        );
        assert_eq!(encode(&lua, "'\\xc0\\x80'"), "--- !!binary wIA=\n...\n");
        assert_eq!(
            encode(&lua, "'\\xed\\xa0\\x80'"),
            "--- !!binary 7aCA\n...\n"
        );
        assert_eq!(encode(&lua, "'\\xef\\xbf\\xbd'"), "--- \u{fffd}\n...\n");
        assert_eq!(
            encode(&lua, "'\\xf4\\x8f\\xbf\\xbf'"),
            "--- !!binary 9I+/vw==\n...\n"
        );
        assert_eq!(encode(&lua, "'a\\127b'"), "--- \"a\\x7Fb\"\n...\n");
        assert_eq!(
            encode(&lua, "{['\\xff'] = 1}"),
            "---\n!!binary /w==: 1\n...\n"
        );
        assert_eq!(
            encode(&lua, "string.rep('\\xff', 100)"),
            format!("--- !!binary {}w==\n...\n", "/".repeat(133))
        );
        let round: bool = lua
            .load("local s = '\\0\\1\\255 binary' return yaml.decode(yaml.encode(s)) == s")
            .eval()
            .unwrap();
        assert!(round);
    }

    #[test]
    fn quoting_edge_cases() {
        let lua = lua_with_yaml();
        let cases: &[(&str, &str)] = &[
            ("'---'", "--- '---'\n"),
            ("'--- x'", "--- '--- x'\n"),
            ("'...'", "--- '...'\n"),
            ("'--'", "--- --\n"),
            ("' ---'", "--- ' ---'\n"),
            ("'x ---'", "--- x ---\n"),
            ("'x \\ny'", "--- \"x \\ny\"\n"),
            ("'x\\n'", "--- 'x\n\n  '\n"),
            ("'\\nx'", "--- '\n\n  x'\n"),
            (
                "string.rep('x', 100)",
                &format!("--- {}\n", "x".repeat(100)),
            ),
        ];
        for (expression, expected) in cases {
            assert_eq!(
                encode(&lua, expression),
                format!("{expected}...\n"),
                "{expression}"
            );
        }
        assert_eq!(
            encode(&lua, "{string.rep('word ', 30)}"),
            format!(
                "---\n- '{}word\n  {}'\n...\n",
                "word ".repeat(15),
                "word ".repeat(14)
            )
        );
        assert_eq!(encode(&lua, "{[''] = 1}"), "---\n'': 1\n...\n");
        assert_eq!(encode(&lua, "{a = ''}"), "---\na:\n...\n");
        assert_eq!(
            encode(&lua, "{['multi\\nkey'] = 1}"),
            "---\n? 'multi\n\n  key'\n: 1\n...\n"
        );
        assert_eq!(
            encode(&lua, "{[string.rep('k', 130)] = 1}"),
            format!("---\n? {}\n: 1\n...\n", "k".repeat(130))
        );
    }

    #[test]
    fn encode_streams_and_errors() {
        let lua = lua_with_yaml();
        assert_eq!(encode(&lua, "1, 2"), "--- 1\n...\n--- 2\n...\n");
        assert_eq!(encode(&lua, ""), "");
        assert_eq!(encode(&lua, "nil"), "--- null\n...\n");
        let message: String = lua
            .load("local ok, e = pcall(yaml.encode, print) return e")
            .eval()
            .unwrap();
        assert_eq!(message, "unsupported Lua type 'function'");
        let message: String = lua
            .load("local ok, e = pcall(yaml.encode, setmetatable({}, {__serialize = function() error('boom', 0) end})) return e")
            .eval()
            .unwrap();
        assert_eq!(message, "boom");
        let deep = "(function() local t = {} local c = t for i = 1, 128 do c[1] = {} c = c[1] end return t end)()";
        let message: String = lua
            .load(format!("local ok, e = pcall(yaml.encode, {deep}) return e"))
            .eval()
            .unwrap();
        assert_eq!(message, "Too high nest level");
        let shallow = "(function() local t = {} local c = t for i = 1, 127 do c[1] = {} c = c[1] end return t end)()";
        assert!(encode(&lua, shallow).ends_with("[]\n...\n"));
        let text: String = lua
            .load(format!(
                "local y = yaml.new() y.cfg{{encode_deep_as_nil = true}} return y.encode({deep})"
            ))
            .eval()
            .unwrap();
        assert!(text.ends_with("- null\n...\n"), "{text}");
        let text: String = lua
            .load("local y = yaml.new() y.cfg{encode_use_tostring = true} return y.encode(print)")
            .eval()
            .unwrap();
        assert!(text.starts_with("--- 'function: "));
        let independent: (bool, bool) = lua
            .load("local y = yaml.new() y.cfg{encode_use_tostring = true} return y.cfg.encode_use_tostring, yaml.cfg.encode_use_tostring")
            .eval()
            .unwrap();
        assert_eq!(independent, (true, false));
        let console_cycle = console(&lua, "(function() local r = {} r[1] = r return r end)()");
        assert_eq!(console_cycle, "---\n- &0\n  - *0\n...\n");
    }

    #[test]
    fn console_reports_encoding_failures() {
        let lua = lua_with_yaml();
        let reply = console(
            &lua,
            "setmetatable({}, {__serialize = function() error('boom', 0) end})",
        );
        assert_eq!(
            reply,
            "---\n- error: 'console: an exception occurred when formatting the output: boom'\n...\n"
        );
        assert_eq!(
            console_error_reply(&lua, Value::Nil).unwrap(),
            "---\n- error: null\n...\n"
        );
    }

    /// `yaml.decode(<text>)` results as `type:value` strings.
    fn decode(lua: &Lua, text: &str) -> Vec<String> {
        let function: mlua::Function = lua
            .load(
                "return function(s) \
                     local r = {pcall(yaml.decode, s)} \
                     local out = {} \
                     for i = 1, table.maxn(r) do \
                         local v = r[i] \
                         out[i] = type(v) == 'string' and v or (type(v) .. ':' .. tostring(v)) \
                     end \
                     return out \
                 end",
            )
            .eval()
            .unwrap();
        let text = lua.create_string(text).unwrap();
        let results: Vec<String> = function.call(text).unwrap();
        results
    }

    #[test]
    fn decode_scalars_like_lyaml() {
        let lua = lua_with_yaml();
        let cases: &[(&str, &[&str])] = &[
            ("5", &["boolean:true", "number:5"]),
            ("0x10", &["boolean:true", "number:16"]),
            ("1e5", &["boolean:true", "number:100000"]),
            ("inf", &["boolean:true", "number:inf"]),
            (".inf", &["boolean:true", ".inf"]),
            (".5", &["boolean:true", "number:0.5"]),
            ("+5", &["boolean:true", "number:5"]),
            ("1_000", &["boolean:true", "1_000"]),
            ("-0", &["boolean:true", "number:0"]),
            ("017", &["boolean:true", "number:17"]),
            ("True", &["boolean:true", "True"]),
            ("yes", &["boolean:true", "boolean:true"]),
            ("no", &["boolean:true", "boolean:false"]),
            ("on", &["boolean:true", "on"]),
            ("NULL", &["boolean:true", "NULL"]),
            ("~", &["boolean:true", "cdata:cdata<void *>: NULL"]),
            ("null", &["boolean:true", "cdata:cdata<void *>: NULL"]),
            ("'~'", &["boolean:true", "~"]),
            ("\"null\"", &["boolean:true", "null"]),
            ("'123'", &["boolean:true", "123"]),
            ("!!str 5", &["boolean:true", "5"]),
            ("!!int 5", &["boolean:true", "number:5"]),
            ("!!int 0x10", &["boolean:true", "number:0"]),
            ("!!int -5x", &["boolean:true", "number:-5"]),
            ("!!float 5", &["boolean:true", "number:5"]),
            ("!!float abc", &["boolean:true", "number:0"]),
            ("!!float 1.5x", &["boolean:true", "number:1.5"]),
            ("!!bool yes", &["boolean:true", "boolean:true"]),
            ("!!bool True", &["boolean:true", "boolean:false"]),
            ("!!binary aGVsbG8=", &["boolean:true", "hello"]),
            ("!!binary aGVsbG8", &["boolean:true", "hello"]),
            ("!!binary aGVs bG8=", &["boolean:true", "hello"]),
            ("!!binary a", &["boolean:true", ""]),
            ("!!null x", &["boolean:true", "x"]),
            ("!unknown 5", &["boolean:true", "number:5"]),
            ("5.", &["boolean:true", "number:5"]),
            ("1.5e3", &["boolean:true", "number:1500"]),
            (
                "12345678901234567890",
                &["boolean:true", "cdata:12345678901234567890ULL"],
            ),
            (
                "-9223372036854775809",
                &["boolean:true", "cdata:-9223372036854775808LL"],
            ),
            (
                "9223372036854775807",
                &["boolean:true", "cdata:9223372036854775807ULL"],
            ),
            (
                "99999999999999999999",
                &["boolean:true", "cdata:18446744073709551615ULL"],
            ),
            (
                "100000000000000",
                &["boolean:true", "cdata:100000000000000LL"],
            ),
            ("99999999999999", &["boolean:true", "number:99999999999999"]),
            ("\"\\x41\"", &["boolean:true", "A"]),
            ("\"a\\0b\"", &["boolean:true", "a\0b"]),
            ("", &["boolean:true"]),
            ("---", &["boolean:true", ""]),
            ("--- 1\n--- 2", &["boolean:true", "number:1", "number:2"]),
            ("&a 5", &["boolean:true", "number:5"]),
            ("- &a 5\n- *a", &["boolean:false", "invalid reference: a"]),
            ("1e400", &["boolean:true", "number:inf"]),
            ("-1e400", &["boolean:true", "number:-inf"]),
            ("nan_", &["boolean:true", "nan_"]),
            ("'it''s'", &["boolean:true", "it's"]),
            ("|\n  a\n  b\n", &["boolean:true", "a\nb\n"]),
            (">\n  a\n  b\n", &["boolean:true", "a b\n"]),
            ("%YAML 1.1\n--- 5", &["boolean:true", "number:5"]),
        ];
        for (text, expected) in cases {
            assert_eq!(decode(&lua, text), *expected, "{text:?}");
        }
    }

    #[test]
    fn decode_errors_like_lyaml() {
        let lua = lua_with_yaml();
        let cases: &[(&str, &str)] = &[
            (
                "[1",
                "did not find expected ',' or ']' at document: 1, line: 2, column: 1\nwhile parsing a flow sequence at line: 1, column: 1\n",
            ),
            (
                "{a: [}",
                "did not find expected node content at document: 1, line: 1, column: 6\nwhile parsing a flow node at line: 1, column: 6\n",
            ),
            ("*x", "invalid reference: x"),
            (
                "a: b: c",
                "mapping values are not allowed in this context at document: 1, line: 1, column: 5\n",
            ),
            (
                "\t5",
                "found character that cannot start any token at document: 0\nwhile scanning for the next token at line: 1, column: 1\n",
            ),
            (
                "!!binary @@@",
                "found character that cannot start any token at document: 0, line: 1, column: 10\nwhile scanning for the next token at line: 1, column: 10\n",
            ),
        ];
        let function: mlua::Function = lua
            .load("return function(s) local ok, e = pcall(yaml.decode, s) return e end")
            .eval()
            .unwrap();
        for (text, message) in cases {
            let got: String = function.call(*text).unwrap();
            assert_eq!(got, *message, "{text:?}");
        }
        let got: String = function.call(lua.create_string(b"\xff").unwrap()).unwrap();
        assert_eq!(got, "invalid leading UTF-8 octet at document: 0\n");
        let usage: String = lua
            .load("local ok, e = pcall(yaml.decode) return e")
            .eval()
            .unwrap();
        assert_eq!(
            usage,
            "Usage: yaml.decode(document, [{tag_only = boolean}])"
        );
        let number: f64 = lua.load("return yaml.decode(5)").eval().unwrap();
        assert_eq!(number, 5.0);
        let nan_key: String = lua
            .load("local ok, e = pcall(yaml.decode, 'nan: 1') return e")
            .eval()
            .unwrap();
        assert_eq!(nan_key, "table index is NaN");
    }

    #[test]
    fn decode_collections_and_metatables() {
        let lua = lua_with_yaml();
        let checks: (String, String, i64, bool, bool) = lua
            .load(
                "local t = yaml.decode('[1, {a: 2}, ~]') \
                 return getmetatable(t).__serialize, getmetatable(t[2]).__serialize, #t, \
                        t[3] == nil, type(t[3]) == 'cdata'",
            )
            .eval()
            .unwrap();
        assert_eq!(
            checks,
            ("seq".to_string(), "map".to_string(), 3, true, true)
        );
        let plain: bool = lua
            .load("local y = yaml.new() y.cfg{decode_save_metatables = false} return getmetatable(y.decode('[1]')) == nil")
            .eval()
            .unwrap();
        assert!(plain);
        let deep_ok: i64 = lua
            .load("local s = string.rep('[', 128) .. string.rep(']', 128) local t = yaml.decode(s) return #t")
            .eval()
            .unwrap();
        assert_eq!(deep_ok, 1);
        let deep: String = lua
            .load("local s = string.rep('[', 129) .. string.rep(']', 129) local ok, e = pcall(yaml.decode, s) return e")
            .eval()
            .unwrap();
        assert_eq!(
            deep,
            "Found too many nested data structures (129) at document: 1"
        );
        let round: bool = lua
            .load(
                "local v = {a = {1, 2, {b = 'x y', c = {}}}, ['k k'] = 'multi\\nline', n = 1.5, big = 18446744073709551615ULL} \
                 local d = yaml.decode(yaml.encode(v)) \
                 return d.a[3].b == 'x y' and d['k k'] == 'multi\\nline' and d.n == 1.5 and d.big == v.big and #d.a[3].c == 0",
            )
            .eval()
            .unwrap();
        assert!(round);
    }

    #[test]
    fn module_shares_null_and_metatables() {
        let lua = lua_with_yaml();
        let same: bool = lua
            .load("local y = yaml.new() return rawequal(y.NULL, yaml.NULL) and y.array_mt == yaml.array_mt and yaml.NULL == nil")
            .eval()
            .unwrap();
        assert!(same);
        assert!(rawequal_null(&lua));
    }

    fn rawequal_null(lua: &Lua) -> bool {
        let null = serializer::null(lua).unwrap();
        lua.globals().set("shared_null", null).unwrap();
        lua.load("return rawequal(shared_null, yaml.NULL)")
            .eval()
            .unwrap()
    }

    #[test]
    fn flow_tracker_follows_libyaml_queue() {
        use QueuedEvent::*;
        let mut tracker = FlowTracker::default();
        for event in [StreamStart, DocumentStart, SequenceStart { flow: true }] {
            tracker.push(event);
        }
        assert!(tracker.in_flow(), "a queued flow start counts");
        tracker.push(MappingStart { flow: false });
        assert!(tracker.in_flow());
        tracker.push(Node);
        assert!(
            !tracker.in_flow(),
            "flow start processed, its '[' not written yet"
        );
        tracker.push(Node);
        tracker.push(Node);
        assert_eq!(tracker.flow_level, 2);
        tracker.push(MappingEnd);
        tracker.push(SequenceEnd);
        assert_eq!(tracker.flow_level, 0);
        assert!(!tracker.in_flow());
    }

    #[test]
    fn printable_check_matches_tarantool() {
        assert!(is_printable_utf8(b"plain ascii \x01\x7f"));
        assert!(is_printable_utf8(
            "é ünï \u{a0} \u{d7ff} \u{e000} \u{fffd} 😀 \u{10000}".as_bytes()
        ));
        for bad in [
            &b"\xff"[..],
            b"\xc3",
            b"\xc2\x80",
            b"\xc2\x9f",
            b"\xc2\x85",
            b"\xc0\x80",
            b"\xc1\xbf",
            b"\xe0\x80\x80",
            b"\xed\xa0\x80",
            b"\xef\xbb\xbf",
            b"\xef\xbf\xbe",
            b"\xf4\x8f\xbf\xbf",
            b"\xf5\x80\x80\x80",
            b"\xf3\xb0\x80\x80",
        ] {
            assert!(!is_printable_utf8(bad), "{bad:?}");
        }
    }

    #[test]
    fn base64_is_lenient() {
        assert_eq!(decode_base64(b"aGVsbG8="), b"hello");
        assert_eq!(decode_base64(b"aGVs\nbG8"), b"hello");
        assert_eq!(decode_base64(b"a"), b"");
        assert_eq!(decode_base64(b"//4="), b"\xff\xfe");
    }
}
