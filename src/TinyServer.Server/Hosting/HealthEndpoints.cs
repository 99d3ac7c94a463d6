using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace TinyServer.Server;

/// <summary>
/// <c>--health-port</c>: ASP.NET Core health checks (the shared framework's) on Kestrel's HTTP/1.1, beside the line
/// protocol and outside it: <c>/healthz</c> runs the checks tagged <see cref="Live"/> (200 while the process runs),
/// <c>/readyz</c> those tagged <see cref="Ready"/> (200 while listening and not stopping, 503 otherwise; see
/// <see cref="LameDuck"/>). Only called with a health port, so that without one no health check code is loaded.
/// </summary>
internal static class HealthEndpoints
{
    public const string Live = "live";
    public const string Ready = "ready";

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void AddChecks(IServiceCollection services) =>
        services.AddHealthChecks()
            .AddCheck("process", static () => HealthCheckResult.Healthy(), tags: [Live])
            .AddCheck<ReadinessCheck>("listening", tags: [Ready]);

    /// <summary>
    /// Serves the two paths to requests that arrived on a health listener (<paramref name="onHealthPort"/>); the
    /// port is the connection's local one, so that it works for port 0 and behind any Host header.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Map(WebApplication app, Func<HttpContext, bool> onHealthPort) =>
        app.UseWhen(onHealthPort, branch =>
        {
            branch.UseHealthChecks("/healthz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(Live) });
            branch.UseHealthChecks("/readyz", new HealthCheckOptions { Predicate = check => check.Tags.Contains(Ready) });
        });

    private sealed class ReadinessCheck(LameDuck lameDuck) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(lameDuck.Phase switch
            {
                DrainPhase.Serving => HealthCheckResult.Healthy(),
                DrainPhase.Starting => HealthCheckResult.Unhealthy("starting"),
                _ => HealthCheckResult.Unhealthy("stopping"),
            });
    }
}
