//! Load generator for kafka-ws-bridge (work in progress).
fn main() {
    eprintln!("kwb-load: not implemented yet");
    std::process::exit(2);
}
