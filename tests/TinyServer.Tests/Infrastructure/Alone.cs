namespace TinyServer.Tests.Infrastructure;

/// <summary>
/// Tests that load the machine (thousands of connections) or need it quiet (several processes and a balancer under
/// load): xunit runs this collection after all the others, one test at a time.
/// </summary>
[CollectionDefinition(nameof(Alone), DisableParallelization = true)]
public sealed class Alone;
