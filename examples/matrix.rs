//! The integration matrix's cells: `cargo xtask test` builds this program, lists the cells and
//! runs each in its own process (see `beamline_examples::matrix` for what a cell checks).
//!
//! ```sh
//! cargo run --example matrix -- --list
//! cargo run --example matrix -- --run tls/pooled+mux/partition
//! cargo run --example matrix -- --run tcp/mux/reset --seed 7   # replay with another seed
//! cargo xtask test --only tls/                                 # the TLS half, with a table
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    beamline_examples::matrix::main(std::env::args().skip(1))
}
