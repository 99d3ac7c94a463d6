namespace TinyServer.LoadGen.Tests;

/// <summary>The tier check (tests/TinyServer.TestSupport) over this assembly.</summary>
[Trait("Tier", "unit")]
public sealed class TierTraitTests : TestSupport.TierTraitTests;
