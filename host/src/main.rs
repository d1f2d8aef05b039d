//! The `bascule` command line: run a config, check one, or run the demo.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use bascule::config::Config;
use bascule::control::{FileWatch, ListenerInfo, ReloadError, Reloaded, ServerHandle};
use bascule::demo::Demo;
use bascule::offline;
use bascule::plan::Plan;
use bascule::plugin::{Inspection, PluginRuntime, World};
use bascule::server::Server;
use bascule::upstream::StatsRegistry;
use clap::{Parser, Subcommand, ValueEnum};
use tokio::signal::unix::{SignalKind, signal};

/// A WebAssembly-programmable L4/L7 load balancer.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Worker threads of the async runtime (default: one per CPU core).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the proxy described by a config file; SIGHUP reloads it.
    Run {
        /// The TOML config file.
        #[arg(short, long)]
        config: PathBuf,
        /// Reload when the config file or a plugin it names changes (as
        /// `[reload] watch = true`).
        #[arg(long)]
        watch: bool,
    },
    /// Validate a config file, load its plugins, and exit.
    Check {
        /// The TOML config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Tools for plugin authors.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Start three demo backends and a round-robin proxy in front of them.
    Demo {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// What a `.wasm` is (world, contract version, imports, exports, size,
    /// compile time) and whether this host would load it, or why not.
    /// Exits 1 when it would not load.
    Inspect {
        /// The plugin file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a plugin offline: a balancer over `--backends` for each of
    /// `--requests` (each decision, then the distribution), a header
    /// filter on `--requests` (its edits), or a health interpreter on
    /// `--probes` (its verdicts).
    Run {
        /// The plugin file.
        file: PathBuf,
        /// Backends (balancers): a TOML file of `[[backends]]` with `name`,
        /// `address`, `weight`, `metadata`, and a simulated `latency` and
        /// `failure-rate`.
        #[arg(long)]
        backends: Option<PathBuf>,
        /// Requests (balancers, filters): JSON lines of `method`, `path`,
        /// `headers`, `client`, `sni`.
        #[arg(long)]
        requests: Option<PathBuf>,
        /// Probe outcomes (health interpreters): JSON lines of `status`,
        /// `headers`, `body`, `latency-ms`, `error`.
        #[arg(long)]
        probes: Option<PathBuf>,
        /// The plugin's options, as JSON.
        #[arg(long, default_value = "{}")]
        options: String,
        /// What the balancer serves, or what the interpreter judges.
        #[arg(long, value_enum, default_value_t = ProtocolArg::Http)]
        protocol: ProtocolArg,
        /// Requests arriving per second (balancers): each holds its backend
        /// for the backend's `latency`, so requests overlap and the
        /// in-flight counts least-connections reads are real. Without it,
        /// each request ends before the next arrives.
        #[arg(long, value_parser = positive_rate)]
        rate: Option<f64>,
        /// Print only the distribution (balancers).
        #[arg(long)]
        quiet: bool,
        /// Also time the calls.
        #[arg(long)]
        bench: bool,
    },
    /// A new plugin project in `./NAME`, ready for `./build.sh` and
    /// `bascule plugin run`.
    New {
        /// The project's name (a-z, 0-9, -).
        name: String,
        /// The language: `rust`, `c`, `python` or `js`.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// `balancer`, `filter` or `health`.
        #[arg(long, default_value = "balancer")]
        kind: String,
        /// Where to create it (default: here).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// `plugin run --rate`: a finite number of requests per second above 0.
fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate above 0 (requests per second)"
        )),
    }
}

/// `plugin run --protocol`: what a balancer serves or an interpreter
/// judges. Anything else is refused by name rather than run as HTTP.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Http,
    Tcp,
    Udp,
}

/// What a `plugin` command prints, written to stdout at once, after the
/// command (also when it fails, as `inspect` does after its report). A
/// reader that goes away early (`| head`) ends the output quietly rather
/// than in a panic.
#[derive(Debug, Default)]
struct Output(String);

impl Output {
    fn line(&mut self, line: std::fmt::Arguments<'_>) {
        use std::fmt::Write;
        // Writing into a String cannot fail.
        let _ = self.0.write_fmt(line);
        self.0.push('\n');
    }

    fn emit(self) -> Result<()> {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(self.0.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            written => written.context("writing to stdout"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, cli.workers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bascule: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, workers: Option<u16>) -> Result<()> {
    // The demo shows round robin's exact rotation, which holds per worker:
    // one worker unless asked for more.
    let workers = match command {
        Command::Demo { .. } => workers.or(Some(1)),
        _ => workers,
    };
    // `run` logs as its config says; the config is read first, and its
    // errors printed plainly.
    let loaded = match &command {
        Command::Run { config, .. } => Some(Config::load(config)?),
        _ => None,
    };
    let log = loaded
        .as_ref()
        .map(|config| config.log.clone())
        .unwrap_or_default();
    bascule::logging::init(&log)?;
    let runtime = runtime(workers).context("starting the async runtime")?;
    match (command, loaded) {
        (Command::Check { config }, _) => check(&config),
        (Command::Plugin { command }, _) => plugin(command),
        (
            Command::Run {
                config: path,
                watch,
            },
            Some(config),
        ) => runtime.block_on(serve(&path, config, watch)),
        (Command::Demo { listen }, _) => runtime.block_on(demo(listen)),
        (Command::Run { .. }, None) => anyhow::bail!("the config was not read"),
    }
}

/// The async runtime for `workers` threads (default: one per core). One
/// worker gets a current-thread runtime: no work-stealing queues and no
/// cross-thread wakeups, ~15% more requests per core than a one-thread
/// multi-thread runtime (BENCHMARKS.md), as linkerd2-proxy does on one core.
fn runtime(workers: Option<u16>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(usize::from(workers.max(1)));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

fn check(path: &std::path::Path) -> Result<()> {
    let config = Config::load(path)?;
    let plugins = PluginRuntime::new()?;
    Plan::build(&config, &plugins, &StatsRegistry::default(), 1)?;
    println!(
        "{}: ok ({} listeners, {} pools, {} filters)",
        path.display(),
        config.listeners.len(),
        config.pools.len(),
        config.filters.len()
    );
    Ok(())
}

fn plugin(command: PluginCommand) -> Result<()> {
    let mut out = Output::default();
    let result = plugin_into(command, &mut out);
    out.emit()?;
    result
}

fn plugin_into(command: PluginCommand, out: &mut Output) -> Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let inspection = PluginRuntime::new()?.inspect(&bytes);
            if json {
                out.line(format_args!("{:#}", inspection_json(&inspection)));
            } else {
                print_inspection(out, &file, &inspection);
            }
            inspection
                .loads
                .map_err(|reason| anyhow::anyhow!("{} would not load: {reason}", file.display()))
        }
        PluginCommand::New {
            name,
            lang,
            kind,
            dir,
        } => {
            let kind = match kind.as_str() {
                "balancer" => bascule::scaffold::Kind::Balancer,
                "filter" => bascule::scaffold::Kind::Filter,
                "health" => bascule::scaffold::Kind::Health,
                other => anyhow::bail!("unknown kind `{other}`: balancer, filter or health"),
            };
            let lang = bascule::scaffold::Lang::parse(&lang).ok_or_else(|| {
                anyhow::anyhow!("unknown language `{lang}`: rust, c, python or js")
            })?;
            let made = bascule::scaffold::new_project(&dir, &name, lang, kind)?;
            out.line(format_args!("created {}", made.display()));
            out.line(format_args!("next: cd {} && ./build.sh", made.display()));
            Ok(())
        }
        PluginCommand::Run {
            file,
            backends,
            requests,
            probes,
            options,
            protocol,
            rate,
            quiet,
            bench,
        } => {
            let runtime = PluginRuntime::new()?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let inspection = runtime.inspect(&bytes);
            if let Err(reason) = inspection.loads {
                anyhow::bail!("{} would not load: {reason}", file.display());
            }
            let needs = |input: Option<PathBuf>, flag: &str| {
                input.with_context(|| format!("this plugin needs `{flag} FILE`"))
            };
            match inspection.world {
                Some(World::Balancer) => {
                    let protocol = match protocol {
                        ProtocolArg::Http => bascule::upstream::Protocol::Http,
                        ProtocolArg::Tcp => bascule::upstream::Protocol::Tcp,
                        ProtocolArg::Udp => bascule::upstream::Protocol::Udp,
                    };
                    let backends = offline::read_backends(&needs(backends, "--backends")?)?;
                    let requests = offline::Requests::read(&needs(requests, "--requests")?)?;
                    let run = offline::run_balancer(
                        &runtime,
                        &file,
                        offline::BalancerInputs {
                            options,
                            protocol,
                            backends: &backends,
                            requests: &requests,
                            rate,
                            bench,
                        },
                    )?;
                    print_balancer_run(out, &run, quiet);
                }
                Some(World::HeaderFilter) => {
                    let requests = offline::Requests::read(&needs(requests, "--requests")?)?;
                    let run = offline::run_filter(&runtime, &file, options, &requests, bench)?;
                    for (n, outcome) in run.outcomes.iter().enumerate() {
                        out.line(format_args!(
                            "{:>4}  {}  -> {}",
                            n + 1,
                            outcome.request,
                            outcome.verdict
                        ));
                        for edit in &outcome.edits {
                            out.line(format_args!("        {edit}"));
                        }
                    }
                    if let Some(bench) = run.bench {
                        out.line(format_args!("{bench}"));
                    }
                }
                Some(World::HealthInterpreter) => {
                    let kind = match protocol {
                        ProtocolArg::Http => bascule::health::ProbeKind::Http,
                        ProtocolArg::Tcp => bascule::health::ProbeKind::Tcp,
                        ProtocolArg::Udp => bascule::health::ProbeKind::Udp,
                    };
                    let probes = offline::read_jsonl(&needs(probes, "--probes")?)?;
                    let run =
                        offline::run_interpreter(&runtime, &file, options, kind, &probes, bench)?;
                    for (n, (outcome, verdict)) in run.verdicts.iter().enumerate() {
                        out.line(format_args!("{:>4}  {outcome}  -> {verdict}", n + 1));
                    }
                    if let Some(bench) = run.bench {
                        out.line(format_args!("{bench}"));
                    }
                }
                None => anyhow::bail!("{} exports no Bascule world", file.display()),
            }
            Ok(())
        }
    }
}

fn print_balancer_run(out: &mut Output, run: &offline::BalancerRun, quiet: bool) {
    if !quiet {
        for (n, decision) in run.decisions.iter().enumerate() {
            let served = match (&decision.served_by, &decision.error) {
                (_, Some(error)) => format!("failed: {error}"),
                (Some(backend), None) => backend.clone(),
                (None, None) => "no backend".to_owned(),
            };
            let mut notes = vec![format!("candidates {}", decision.candidates.join(", "))];
            if !decision.failed.is_empty() {
                notes.push(format!("{} failed", decision.failed.join(", ")));
            }
            out.line(format_args!(
                "{:>4}  {}  -> {served}  ({})",
                n + 1,
                decision.request,
                notes.join("; ")
            ));
        }
    }
    let total: usize = run.distribution.iter().map(|(_, count)| count).sum();
    out.line(format_args!("distribution over {total} served:"));
    for (backend, count) in &run.distribution {
        #[allow(clippy::cast_precision_loss)]
        let share = if total == 0 {
            0.0
        } else {
            *count as f64 * 100.0 / total as f64
        };
        out.line(format_args!("  {backend}  {count}  ({share:.1}%)"));
    }
    if run.peak_in_flight.iter().any(|&peak| peak > 1) {
        let peaks: Vec<String> = run
            .distribution
            .iter()
            .zip(&run.peak_in_flight)
            .map(|((backend, _), peak)| format!("{backend} {peak}"))
            .collect();
        out.line(format_args!("most in flight at once: {}", peaks.join(", ")));
    }
    if let Some(bench) = run.bench {
        out.line(format_args!("{bench}"));
    }
}

fn print_inspection(out: &mut Output, file: &std::path::Path, inspection: &Inspection) {
    let format = inspection.format.name();
    out.line(format_args!("file:      {}", file.display()));
    out.line(format_args!("size:      {} bytes", inspection.size));
    out.line(format_args!("sha256:    {}", inspection.sha256));
    out.line(format_args!("format:    {format}"));
    if let Some(took) = inspection.compile_time {
        out.line(format_args!(
            "compiled:  {:.1} ms",
            took.as_secs_f64() * 1e3
        ));
    }
    let world = inspection.world.map_or("none", World::name);
    let contract = inspection
        .contract
        .as_deref()
        .unwrap_or("no bascule:plugin names");
    out.line(format_args!("world:     {world} ({contract})"));
    out.line(format_args!(
        "host:      speaks {}, loads {}",
        bascule::plugin::CONTRACT,
        bascule::plugin::loadable_contracts()
    ));
    for (heading, names) in [
        ("imports", &inspection.imports),
        ("exports", &inspection.exports),
    ] {
        out.line(format_args!("{heading}:"));
        for name in names {
            out.line(format_args!("  {name}"));
        }
    }
    match &inspection.loads {
        Ok(()) => out.line(format_args!("loads:     yes")),
        Err(reason) => out.line(format_args!("loads:     no: {reason}")),
    }
}

fn inspection_json(inspection: &Inspection) -> serde_json::Value {
    serde_json::json!({
        "size": inspection.size,
        "sha256": inspection.sha256,
        "format": inspection.format.name(),
        "compile-ms": inspection.compile_time.map(|t| t.as_secs_f64() * 1e3),
        "world": inspection.world.map(World::name),
        "contract": inspection.contract,
        "host-loads": bascule::plugin::loadable_contracts(),
        "imports": inspection.imports,
        "exports": inspection.exports,
        "loads": inspection.loads.is_ok(),
        "why-not": inspection.loads.as_ref().err(),
    })
}

async fn serve(path: &std::path::Path, config: Config, watch: bool) -> Result<()> {
    // Installed first: SIGHUP's default action would end the process.
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let server = Server::start(&config).await?;
    let listeners: Vec<ListenerInfo> = server.listeners().iter().map(ListenerInfo::from).collect();
    let admin = server.admin().map(|admin| admin.address);
    // The control task owns the server before anyone is told where it
    // listens: `POST /reload` works from the first request.
    let (handle, control) = ServerHandle::spawn(server, path.to_owned());
    let watching = (watch || config.reload.watch)
        .then(|| {
            FileWatch::start(
                handle.downgrade(),
                path.to_owned(),
                &config,
                config.reload.debounce,
            )
        })
        .transpose()?;
    announce(listeners.into_iter());
    if let Some(address) = admin {
        println!("bascule: admin serving http://{address}");
    }
    let mut grace = config.shutdown_grace;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            result = &mut shutdown => {
                result?;
                break;
            }
            _ = hangup.recv() => {
                let reloaded = handle.reload().await;
                if let Ok(reloaded) = &reloaded {
                    grace = reloaded.shutdown_grace;
                }
                report_reload(reloaded, path);
            }
        }
    }
    drop(watching);
    let finished = handle.shutdown(grace).await;
    control.finished().await;
    // A non-zero exit tells systemd and Kubernetes that the stop cut
    // requests short.
    anyhow::ensure!(
        finished,
        "requests still in flight after the {} shutdown grace were cut short",
        humantime::format_duration(grace)
    );
    Ok(())
}

/// Reports a SIGHUP reload on stdout, one line for scripts (with the
/// listeners it added); what was wrong is in the log, which the control
/// task writes for every reload, whatever triggered it.
fn report_reload(result: Result<Reloaded, ReloadError>, path: &std::path::Path) {
    match result {
        Ok(reloaded) => {
            announce(reloaded.added.into_iter());
            println!("bascule: reloaded {}", path.display());
        }
        Err(_) => {
            println!("bascule: reload rejected, still serving the previous config");
        }
    }
}

fn announce(listeners: impl Iterator<Item = ListenerInfo>) {
    for listener in listeners {
        println!(
            "bascule: listener {} serving {}://{}",
            listener.name, listener.scheme, listener.address
        );
    }
}

async fn demo(listen: SocketAddr) -> Result<()> {
    let demo = Demo::start(listen).await?;
    let [http, tcp] = demo.server.listeners() else {
        anyhow::bail!("the demo should have an HTTP and a TCP listener");
    };
    for (n, backend) in demo.backends.iter().enumerate() {
        println!("demo backend demo-backend-{} on http://{backend}", n + 1);
    }
    let count = demo.backends.len();
    println!(
        "bascule demo proxy on http://{} (HTTP, round robin over {count} backends)",
        http.address
    );
    println!(
        "bascule demo proxy on tcp://{} (TCP, least connections over the same {count})",
        tcp.address
    );
    println!(
        "try:  for i in 1 2 3 4; do curl -s http://{}/; done",
        http.address
    );
    println!(
        "      curl -si http://{}/ | grep x-   # headers added by the header filter",
        http.address
    );
    println!(
        "      curl -s http://{}/   # the same backends through the L4 proxy",
        tcp.address
    );
    println!("Ctrl-C stops everything.");
    shutdown_signal().await
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() -> Result<()> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    eprintln!("bascule: shutting down");
    Ok(())
}
