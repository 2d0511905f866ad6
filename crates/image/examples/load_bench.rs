//! Measures `ImageStore::load` and `save` throughput: `cargo run --release -p image --example load_bench -- ARCHIVE [STORE_DIR]`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let archive = args.next().ok_or("usage: load_bench ARCHIVE [STORE_DIR]")?;
    let root = args
        .next()
        .unwrap_or_else(|| "/tmp/berth-load-bench".into());
    let _ = std::fs::remove_dir_all(&root);
    let store = image::ImageStore::open(&root)?;
    let size = std::fs::metadata(&archive)?.len();
    let mut f = std::fs::File::open(&archive)?;
    let t = Instant::now();
    let loaded = store.load(&mut f, &mut |_| {})?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "load: {} image(s), {size} bytes in {secs:.3}s = {:.0} MB/s",
        loaded.len(),
        size as f64 / secs / 1e6
    );
    let names: Vec<String> = loaded.iter().map(|l| l.id.to_string()).collect();
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(format!("{root}.saved.tar"))?);
    store.save(&names, &mut out)?;
    drop(out);
    let secs = t.elapsed().as_secs_f64();
    println!("save: {secs:.3}s = {:.0} MB/s", size as f64 / secs / 1e6);
    Ok(())
}
