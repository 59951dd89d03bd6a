//! The `tarantula` binary: hand the command line to the server, exit with its code.

fn main() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    use_huge_pages();
    let argv: Vec<String> = std::env::args().collect();
    let code = tarantula::server::run(argv);
    std::process::exit(code);
}

/// Put the malloc heap, where tuples and index nodes live, on transparent huge pages.
///
/// glibc does so when its tunable `glibc.malloc.hugetlb` is 1, which it reads only when a
/// process starts, so the binary executes itself again, once, with the tunable added to
/// `GLIBC_TUNABLES` (same arguments, same pid). A `GLIBC_TUNABLES` that names the tunable
/// already, whatever its value, is left alone: `glibc.malloc.hugetlb=0` turns this off.
/// Random accesses over a big heap (index searches, the tuples they find) then miss the
/// TLB far less: measured, REPLACE at 4 connections x 64 over 100,000 tuples, 435 ns of
/// server user CPU per request with 4 KiB pages, 395 ns with this. If the executable
/// cannot be run again, the server runs as it is.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn use_huge_pages() {
    use std::os::unix::process::CommandExt as _;
    const TUNABLE: &str = "glibc.malloc.hugetlb";
    let current = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if current.to_string_lossy().contains(TUNABLE) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut tunables = current;
    if !tunables.is_empty() {
        tunables.push(":");
    }
    tunables.push(format!("{TUNABLE}=1"));
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    // Returns only if the exec failed.
    let _ = command.args(args).env("GLIBC_TUNABLES", tunables).exec();
}
