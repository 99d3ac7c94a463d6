using BenchmarkDotNet.Running;
using TinyServer.Benchmarks;

// typeof(Program) would be ambiguous: the referenced server assembly has a public Program class too.
BenchmarkSwitcher.FromAssembly(typeof(ProtocolBenchmarks).Assembly).Run(args);
