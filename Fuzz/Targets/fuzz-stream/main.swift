internal import FuzzSupport

runLibFuzzer { fuzz($0, $1) }
