//! `beamline-chaos`: the fault-injecting proxy from a shell, for trying a server or a client
//! by hand. Faults are flags at start and commands on stdin while it runs; `--help` lists both.

mod cli;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use beamline_chaos::Proxy;
use tokio::sync::mpsc;

use cli::{Command, Config, LineCommand};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match cli::parse_args(&args) {
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => run(config),
        Err(e) => {
            eprintln!("beamline-chaos: {e}\n(see `beamline-chaos --help`)");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("beamline-chaos: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let mut builder = Proxy::builder(config.upstream).listen(config.listen);
    if let Some(seed) = config.seed {
        builder = builder.seed(seed);
    }
    for (direction, fault) in config.faults {
        builder = builder.fault(direction, fault);
    }
    let proxy = match builder.start().await {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("beamline-chaos: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.refuse {
        // Refusing only closes the listener: it cannot fail.
        let _ = proxy.refuse_new(true);
    }
    if let Some(mode) = config.partition {
        proxy.partition_with(mode);
    }
    println!(
        "beamline-chaos listening on {}, forwarding to {} (seed {}); type `help` for commands",
        proxy.local_addr(),
        proxy.upstream(),
        proxy.seed()
    );
    let _ = std::io::stdout().flush();

    // stdin is read on a plain thread (blocking reads); lines come to the runtime over a
    // channel. The thread ends with stdin, or when the runtime is gone.
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        match cli::parse_line(&line) {
            Ok(LineCommand::Perform(actions)) => {
                for action in &actions {
                    if let Err(e) = proxy.perform(action) {
                        eprintln!("beamline-chaos: {e}");
                    }
                }
                println!("ok");
            }
            Ok(LineCommand::Stats) => println!("{:?}", proxy.stats()),
            Ok(LineCommand::Help) => print!("{}", cli::COMMANDS),
            Ok(LineCommand::Quit) => {
                proxy.shutdown().await;
                return ExitCode::SUCCESS;
            }
            Ok(LineCommand::Nothing) => {}
            Err(e) => eprintln!("beamline-chaos: {e} (type `help` for commands)"),
        }
        let _ = std::io::stdout().flush();
    }
    // stdin is closed (run in the background, say): keep proxying until killed.
    std::future::pending::<ExitCode>().await
}
