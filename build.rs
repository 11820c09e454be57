// The shipped features, fault timelines and schemas are embedded with include_dir!/
// include_str!, which cargo does not track for new files: rebuild when those folders change.
fn main() {
    for dir in ["features", "scenarios", "schemas", "certs"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
