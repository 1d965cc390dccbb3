// The entry point of every fuzz executable. SwiftPM links an executable's `main` to
// its `main.swift`, so libFuzzer's own `main` is never used; each target's
// `main.swift` hands control to libFuzzer's driver with its fuzz function instead.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The signature of `LLVMFuzzerTestOneInput`.
public typealias FuzzFunction = @convention(c) (UnsafePointer<UInt8>, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
private func llvmFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: FuzzFunction) -> CInt

/// Runs libFuzzer (with the process's command line) on `function` and exits with its status.
public func runLibFuzzer(_ function: FuzzFunction) -> Never {
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(llvmFuzzerRunDriver(&argc, &argv, function))
}
