//! `--group N`: what adding, joining and removing cost in an MLS group of N devices, in this
//! process (the measurement is `missive_core::group_bench`, which the browser runs too).

pub fn run(size: usize) -> anyhow::Result<()> {
    let report = missive_core::group_bench::run(size)?;
    for line in missive_core::group_bench::describe(&report) {
        println!("{line}");
    }
    println!("{report}");
    Ok(())
}
