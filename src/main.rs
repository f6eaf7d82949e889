fn main() -> std::process::ExitCode {
    glm_proxy::cli::main()
}
