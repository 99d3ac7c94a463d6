using System.Runtime.CompilerServices;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace TinyServer.Server;

/// <summary>
/// OpenTelemetry export of the <c>TinyServer</c> meter, chosen by <see cref="ServerOptions.MetricsExporter"/>. Only
/// called when an exporter is chosen: with <c>none</c> the JIT never compiles these methods, so no OpenTelemetry
/// assembly is loaded and startup stays as fast as without them.
/// </summary>
internal static class MetricsExport
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void AddExporter(IServiceCollection services, ServerOptions options)
    {
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("tinyserver"))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(ServerMetrics.MeterName);
                int intervalMilliseconds = options.MetricsIntervalSeconds * 1000;
                switch (options.MetricsExporter)
                {
                    case MetricsExporter.Console:
                        metrics.AddConsoleExporter((_, reader) => reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = intervalMilliseconds);
                        break;
                    case MetricsExporter.Otlp:
                        metrics.AddOtlpExporter((exporter, reader) =>
                        {
                            if (options.OtlpEndpoint is { } endpoint)
                            {
                                exporter.Endpoint = endpoint;
                            }

                            exporter.Protocol = options.OtlpProtocol == OtlpProtocol.Http ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;

                            reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = intervalMilliseconds;
                        });
                        break;
                    case MetricsExporter.Prometheus:
                        metrics.AddPrometheusExporter();
                        break;
                    default:
                        throw new ArgumentOutOfRangeException(nameof(options), options.MetricsExporter, "no exporter");
                }
            });
    }

    /// <summary>
    /// Serves <c>/metrics</c> on the HTTP endpoints <see cref="TinyServerHost"/> opened for Prometheus
    /// (<paramref name="onMetricsPort"/>): not on a separate health port.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void MapPrometheus(WebApplication app, Func<Microsoft.AspNetCore.Http.HttpContext, bool> onMetricsPort) =>
        app.UseOpenTelemetryPrometheusScrapingEndpoint(context => context.Request.Path == "/metrics" && onMetricsPort(context));
}
