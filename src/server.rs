//! Start-up and shutdown: the command line, the TX state, the init fiber and the loop.
//!
//! Runs on the main thread, which becomes the TX thread. `run` parses the command line,
//! builds the loop and the Lua state, starts the init fiber (libraries, `-e` expressions,
//! the script, then the console if asked for) and runs the loop until it stops; every way
//! out goes through [`exit_process`] so the pid file, unix sockets and the terminal are
//! cleaned up however the process ends.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use mlua::{Function, MultiValue, Table, Value};

use crate::cfg::Cfg;
use crate::coio::CoioPool;
use crate::constants::{TARANTOOL_VERSION, TARANTULA_VERSION};
use crate::fiber::sched::Sched;
use crate::lua::fiber::LuaFibers;
use crate::net::Net;
use crate::net::event_loop::{EventLoop, WAKER_TOKEN};
use crate::net::stdin::Stdin;
use crate::tx::{LoopClock, Tx};

/// What the command line asks for.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    pub help: bool,
    pub version: bool,
    /// `-e EXPR`, in order.
    pub expressions: Vec<String>,
    /// `-l NAME`, in order.
    pub libraries: Vec<String>,
    /// `-i`: the console after the script.
    pub interactive: bool,
    /// The script path, or `-` for standard input.
    pub script: Option<String>,
    /// Arguments after the script.
    pub args: Vec<String>,
}

/// Usage text for `-h`.
pub fn usage() -> String {
    format!(
        "Tarantula {TARANTULA_VERSION}: a Tarantool {TARANTOOL_VERSION} compatible \
         in-memory database and Lua application server

Usage: tarantula [OPTIONS] [SCRIPT [ARGS...]]

With no SCRIPT, the interactive console starts when standard input is a terminal,
and a script piped on standard input runs otherwise.

Options:
  -h, --help      display this help and exit
  -V, --version   print the version and exit
  -e EXPR         execute the Lua string EXPR before the script
  -l NAME         require library NAME into the global NAME before the script
  -i              enter the interactive console after the script
  --              stop handling options
  -               read the script from standard input

See tarantula(1) for box.cfg options, signals and files.
"
    )
}

/// Text for `-V`.
pub fn version() -> String {
    format!(
        "Tarantula {TARANTULA_VERSION}\nTarantool protocol {TARANTOOL_VERSION} \
         (binary protocol, Lua console, xlog 0.12 with CRC-32)\n"
    )
}

/// Parse the command line (without the program name).
pub fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut spec = getopts::Options::new();
    spec.parsing_style(getopts::ParsingStyle::StopAtFirstFree);
    spec.optflag("h", "help", "display this help and exit");
    spec.optflag("V", "version", "print the version and exit");
    spec.optflag("v", "", "print the version and exit");
    spec.optmulti("e", "", "execute EXPR", "EXPR");
    spec.optmulti("l", "", "require library NAME", "NAME");
    spec.optflag("i", "", "enter interactive mode after the script");
    let matches = spec.parse(args).map_err(|err| err.to_string())?;
    let mut free = matches.free.clone().into_iter();
    let script = free.next();
    Ok(Options {
        help: matches.opt_present("h"),
        version: matches.opt_present("V") || matches.opt_present("v"),
        expressions: matches.opt_strs("e"),
        libraries: matches.opt_strs("l"),
        interactive: matches.opt_present("i"),
        script,
        args: free.collect(),
    })
}

/// Files to remove at exit (pid file, unix sockets), shared with whoever creates them.
static REMOVE_AT_EXIT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The terminal settings of stdin at start, restored at exit in case the line editor is
/// interrupted in raw mode.
static TERMINAL: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Remove `path` when the process exits.
pub fn remove_at_exit(path: PathBuf) {
    let mut paths = REMOVE_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    paths.push(path);
}

/// Stop tracking `path` (it was removed or replaced already).
pub fn forget_at_exit(path: &std::path::Path) {
    let mut paths = REMOVE_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    paths.retain(|known| known != path);
}

fn save_terminal() {
    if !std::io::stdin().is_terminal() {
        return;
    }
    // SAFETY: tcgetattr writes into `termios`, a plain C struct on this frame; fd 0 is stdin.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &mut termios) } == 0 {
        *TERMINAL.lock().unwrap_or_else(|p| p.into_inner()) = Some(termios);
    }
}

fn restore_terminal() {
    let saved = *TERMINAL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(termios) = saved {
        // SAFETY: tcsetattr reads a termios obtained from tcgetattr on the same fd.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &termios) };
    }
}

/// Clean up and end the process: remove the pid file and unix sockets, restore the
/// terminal, flush the log.
pub fn exit_process(code: i32) -> ! {
    let paths = std::mem::take(&mut *REMOVE_AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
    restore_terminal();
    crate::log::shutdown();
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The whole program: returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    crate::log::init();
    let options = match parse_options(&argv[1.min(argv.len())..]) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("tarantula: {err}\n\n{}", usage());
            return 1;
        }
    };
    if options.help {
        print!("{}", usage());
        return 0;
    }
    if options.version {
        print!("{}", version());
        return 0;
    }
    save_terminal();
    match start(&argv, options) {
        Ok(code) => code,
        Err(err) => {
            crate::crit!("{err}");
            1
        }
    }
}

/// What the init fiber gets: the plan of the start-up, as a Lua table.
struct InitPlan {
    options: Options,
    /// The script's source when it comes from standard input.
    stdin_source: Option<String>,
    /// Start the console after the script.
    console: bool,
}

fn start(argv: &[String], options: Options) -> Result<i32, String> {
    let plan = plan_start(options)?;
    let poll = mio::Poll::new().map_err(|e| format!("can't create the event loop: {e}"))?;
    let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)
        .map_err(|e| format!("can't create the loop waker: {e}"))?;
    let (sender, inbox) = crate::tx::inbox(Arc::new(waker));
    let registry = poll
        .registry()
        .try_clone()
        .map_err(|e| format!("can't clone the poll registry: {e}"))?;
    let coio = CoioPool::new(sender.clone());
    let tx = Rc::new(Tx {
        sched: RefCell::new(Sched::new()),
        fibers: RefCell::new(LuaFibers::default()),
        net: RefCell::new(Net::new(registry)),
        stdin: RefCell::new(Stdin::default()),
        coio: RefCell::new(coio),
        cfg: RefCell::new(Cfg::new()),
        sender,
        clock: Cell::new(LoopClock::now()),
        started: std::time::Instant::now(),
        exit_code: Cell::new(None),
        box_configured: Cell::new(false),
        session_triggers: Cell::new(Default::default()),
        iproto_requests: RefCell::new(Default::default()),
        request_bodies: RefCell::new(Vec::new()),
        iproto_listener: Cell::new(None),
        db: RefCell::new(None),
        txns: RefCell::new(Default::default()),
        journal: RefCell::new(Default::default()),
        checkpoint: RefCell::new(Default::default()),
        trigger_spaces: RefCell::new(Default::default()),
        sessions: RefCell::new(Default::default()),
        replication: RefCell::new(Default::default()),
    });
    let lua = crate::lua::new_state(&tx).map_err(|e| format!("can't load the Lua runtime: {e}"))?;
    set_arg(&lua, argv, &plan.options).map_err(|e| e.to_string())?;
    spawn_init(&lua, &tx, &plan).map_err(|e| format!("can't start the init fiber: {e}"))?;
    let mut event_loop =
        EventLoop::new(poll, inbox, lua, tx.clone()).map_err(|e| format!("event loop: {e}"))?;
    let code = event_loop.run();
    crate::replication::tx_replication::stop_all(&tx);
    tx.net.borrow_mut().close_all();
    tx.coio.borrow_mut().stop();
    tx.journal.borrow_mut().shutdown();
    exit_process(code)
}

/// Decide where the script comes from and whether the console follows it.
fn plan_start(options: Options) -> Result<InitPlan, String> {
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let from_stdin = match options.script.as_deref() {
        Some("-") => true,
        None => !stdin_is_terminal && !options.interactive,
        Some(_) => false,
    };
    let stdin_source = if from_stdin {
        let mut source = String::new();
        std::io::stdin()
            .read_to_string(&mut source)
            .map_err(|e| format!("can't read the script from stdin: {e}"))?;
        Some(source)
    } else {
        None
    };
    let console = options.interactive || (options.script.is_none() && stdin_is_terminal);
    Ok(InitPlan {
        options,
        stdin_source,
        console,
    })
}

/// The global `arg`: `arg[-1]` the program, `arg[0]` the script, `arg[1..]` its arguments.
fn set_arg(lua: &mlua::Lua, argv: &[String], options: &Options) -> mlua::Result<()> {
    let arg = lua.create_table()?;
    let program = std::env::current_exe()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| argv.first().cloned().unwrap_or_default());
    arg.set(-1, program)?;
    if let Some(script) = &options.script {
        arg.set(0, script.as_str())?;
    }
    for (n, value) in options.args.iter().enumerate() {
        arg.set(n + 1, value.as_str())?;
    }
    lua.globals().set("arg", arg)
}

/// Start the init fiber running `internal.main.run(plan)` from the prelude.
fn spawn_init(lua: &mlua::Lua, tx: &Tx, plan: &InitPlan) -> mlua::Result<()> {
    let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
    let main: Table = loaded.get("internal.main")?;
    let run: Function = main.get("run")?;
    let table = lua.create_table()?;
    table.set("libraries", plan.options.libraries.clone())?;
    table.set("expressions", plan.options.expressions.clone())?;
    table.set("script", plan.options.script.clone())?;
    table.set("stdin_source", plan.stdin_source.clone())?;
    table.set("args", plan.options.args.clone())?;
    table.set("console", plan.console)?;
    let name = match plan.options.script.as_deref() {
        Some("-") | None if plan.stdin_source.is_some() => String::from("stdin"),
        Some(script) => script.rsplit('/').next().unwrap_or(script).to_string(),
        None => String::from("interactive"),
    };
    let args = MultiValue::from_iter([Value::Function(run), Value::Table(table)]);
    crate::lua::fiber::spawn_queued(lua, tx, &name, args)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse_options(&args).unwrap()
    }

    #[test]
    fn options_stop_at_the_script() {
        let options = parse(&["-e", "x=1", "-l", "json", "s.lua", "-i", "a"]);
        assert_eq!(options.expressions, vec!["x=1"]);
        assert_eq!(options.libraries, vec!["json"]);
        assert_eq!(options.script.as_deref(), Some("s.lua"));
        assert_eq!(options.args, vec!["-i", "a"]);
        assert!(!options.interactive);
        let stdin = parse(&["-", "x"]);
        assert_eq!(stdin.script.as_deref(), Some("-"));
        assert_eq!(stdin.args, vec!["x"]);
        let dashdash = parse(&["-i", "--", "-e"]);
        assert!(dashdash.interactive);
        assert_eq!(dashdash.script.as_deref(), Some("-e"));
        assert!(parse_options(&["-x".to_string()]).is_err());
        assert!(parse(&["-V"]).version && parse(&["-v"]).version && parse(&["--help"]).help);
    }
}
