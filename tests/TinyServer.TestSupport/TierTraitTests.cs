using Xunit;

namespace TinyServer.TestSupport;

/// <summary>
/// Every test class says its tier, which <c>tests/run.sh --fast</c> (the unit tier) and the README rely on. Each test
/// project runs this over its own assembly, through a class of its own derived from this one.
/// </summary>
public abstract class TierTraitTests
{
    [Fact]
    public void Every_test_class_has_one_tier_unit_process_or_load()
    {
        string[] tiers = ["unit", "process", "load"];
        var testClasses = GetType().Assembly.GetTypes()
            .Where(type => type is { IsClass: true, IsAbstract: false } && type.GetMethods().Any(method => method.IsDefined(typeof(FactAttribute), inherit: true)))
            .ToList();
        Assert.Contains(GetType(), testClasses); // the derived class, with this test inherited, is one of them
        var missing = testClasses
            .Where(type => type.CustomAttributes // Its own: a derived class (the same tests on another transport) says it again.
                .Where(a => a.AttributeType == typeof(TraitAttribute) && (string?)a.ConstructorArguments[0].Value == "Tier")
                .Select(a => (string?)a.ConstructorArguments[1].Value)
                .SingleOrDefault() is not { } tier || !tiers.Contains(tier))
            .Select(type => type.FullName)
            .ToList();
        Assert.Empty(missing);
    }
}
