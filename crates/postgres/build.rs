//! `sqlx::migrate!` embeds each migration file it saw at compile time, but on stable Rust it
//! cannot ask to be re-run when a file is *added*; this makes a new migration rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
