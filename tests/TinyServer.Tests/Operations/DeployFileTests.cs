using System.Text.RegularExpressions;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace TinyServer.Tests.Operations;

/// <summary>
/// The deployment files under deploy/, checked without a container engine or a cluster: the Kubernetes manifests
/// parse and say what README.md promises, every option they set is one the server accepts, the systemd unit passes
/// <c>systemd-analyze verify</c>, and the paths agree with the documented publish layout.
/// </summary>
[Trait("Tier", "process")]
public partial class DeployFileTests
{
    private static readonly string Deploy = Path.Combine(BuiltPrograms.RepositoryRoot, "deploy");

    [Fact]
    public void The_deployment_runs_unprivileged_with_tcp_probes_limits_and_a_matching_service()
    {
        YamlMappingNode deployment = LoadSingle("k8s/deployment.yaml");
        YamlMappingNode service = LoadSingle("k8s/service.yaml");
        Assert.Equal(("apps/v1", "Deployment"), (Scalar(deployment, "apiVersion"), Scalar(deployment, "kind")));
        Assert.Equal(("v1", "Service"), (Scalar(service, "apiVersion"), Scalar(service, "kind")));

        YamlMappingNode pod = Map(Map(deployment, "spec"), "template");
        YamlMappingNode podSpec = Map(pod, "spec");
        Assert.Equal("true", Scalar(Map(podSpec, "securityContext"), "runAsNonRoot"));
        Assert.True(int.Parse(Scalar(podSpec, "terminationGracePeriodSeconds"), System.Globalization.CultureInfo.InvariantCulture) > new ServerOptions().ShutdownTimeoutSeconds);

        var container = (YamlMappingNode)Assert.Single(((YamlSequenceNode)podSpec.Children["containers"]).Children);
        YamlMappingNode security = Map(container, "securityContext");
        Assert.Equal(("true", "false"), (Scalar(security, "readOnlyRootFilesystem"), Scalar(security, "allowPrivilegeEscalation")));
        foreach (string kind in new[] { "requests", "limits" })
        {
            YamlMappingNode amounts = Map(Map(container, "resources"), kind);
            Assert.NotEmpty(Scalar(amounts, "cpu"));
            Assert.NotEmpty(Scalar(amounts, "memory"));
        }

        // The probes connect to the TinyServer port (by name), which is the port the environment makes it listen on.
        Dictionary<string, string> ports = ((YamlSequenceNode)container.Children["ports"]).Children.Cast<YamlMappingNode>()
            .ToDictionary(p => Scalar(p, "name"), p => Scalar(p, "containerPort"));
        foreach (string probe in new[] { "readinessProbe", "livenessProbe" })
        {
            Assert.Equal("tinyserver", Scalar(Map(Map(container, probe), "tcpSocket"), "port"));
        }

        Dictionary<string, string> environment = ((YamlSequenceNode)container.Children["env"]).Children.Cast<YamlMappingNode>()
            .ToDictionary(e => Scalar(e, "name"), e => Scalar(e, "value"));
        ServerOptions options = LoadOptions(environment);
        Assert.Equal(ports["tinyserver"], options.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(ports["metrics"], options.PrometheusPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(MetricsExporter.Prometheus, options.MetricsExporter);
        Assert.Equal([System.Net.IPAddress.Any], options.Bind);

        // The Service selects the pods and forwards to ports the container names.
        Assert.Equal(Scalar(Map(Map(pod, "metadata"), "labels"), "app.kubernetes.io/name"), Scalar(Map(Map(service, "spec"), "selector"), "app.kubernetes.io/name"));
        foreach (YamlMappingNode port in ((YamlSequenceNode)Map(service, "spec").Children["ports"]).Children.Cast<YamlMappingNode>())
        {
            Assert.Equal(ports[Scalar(port, "targetPort")], Scalar(port, "port"));
        }
    }

    [Fact]
    public void The_image_listens_on_all_interfaces_on_the_port_it_exposes_as_a_non_root_user()
    {
        string[] lines = File.ReadAllLines(Path.Combine(Deploy, "Dockerfile"));
        string final = string.Join('\n', lines
            .SkipWhile(l => !l.StartsWith("FROM ", StringComparison.Ordinal) || !l.Contains("runtime-deps", StringComparison.Ordinal))
            .Where(l => !l.StartsWith('#')));
        Assert.NotEmpty(final);

        var environment = EnvironmentAssignment().Matches(final).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        ServerOptions options = LoadOptions(environment);
        Assert.Equal([System.Net.IPAddress.Any], options.Bind);
        Assert.Contains($"\nEXPOSE {options.Port}\n", final, StringComparison.Ordinal);
        Assert.Contains("\nUSER $APP_UID\n", final, StringComparison.Ordinal);
        Assert.Contains("ENTRYPOINT [\"/app/TinyServer.Server\"]", final, StringComparison.Ordinal);
        Assert.Contains("dotnet publish src/TinyServer.Server -c Release -r linux-x64 --self-contained", string.Join('\n', lines), StringComparison.Ordinal);
    }

    [Fact]
    public void The_systemd_unit_is_hardened_and_matches_the_publish_layout()
    {
        string[] lines = File.ReadAllLines(Path.Combine(Deploy, "tinyserver.service"));
        var settings = lines.Where(l => l.Length > 0 && l[0] is not ('#' or '['))
            .Select(l => l.Split('=', 2))
            .GroupBy(kv => kv[0], kv => kv[1])
            .ToDictionary(g => g.Key, g => g.ToList());
        string Single(string key) => Assert.Single(settings[key]);

        Assert.Equal("notify", Single("Type"));
        Assert.Equal("/opt/tinyserver/TinyServer.Server", Single("ExecStart"));
        foreach ((string key, string value) in new[]
        {
            ("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
            ("KillSignal", "SIGTERM"), ("Restart", "on-failure"),
        })
        {
            Assert.Equal(value, Single(key));
        }

        var defaults = new ServerOptions();
        Assert.True(int.Parse(Single("TimeoutStopSec"), System.Globalization.CultureInfo.InvariantCulture) > defaults.ShutdownTimeoutSeconds);
        Assert.True(int.Parse(Single("LimitNOFILE"), System.Globalization.CultureInfo.InvariantCulture) > defaults.MaxConnections + 200);
        LoadOptions(settings["Environment"].Select(e => e.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]));

        // README's install steps copy the publish output (out/tinyserver) to /opt/tinyserver.
        string readme = File.ReadAllText(Path.Combine(BuiltPrograms.RepositoryRoot, "README.md"));
        Assert.Contains("dotnet publish src/TinyServer.Server -c Release -r linux-x64 --self-contained -o out/tinyserver", readme, StringComparison.Ordinal);
        Assert.Contains("sudo cp -r out/tinyserver/. /opt/tinyserver/", readme, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Systemd_analyze_verifies_the_unit()
    {
        // The same unit with ExecStart on the built server's executable (verify checks that it exists and runs).
        string analyze = ProcessRunner.RequireTool("systemd-analyze");
        string directory = Directory.CreateTempSubdirectory("tinyserver-unit-").FullName;
        try
        {
            string executable = Path.Combine(Path.GetDirectoryName(BuiltPrograms.ServerDll)!, "TinyServer.Server");
            Assert.True(File.Exists(executable), executable);
            string unit = File.ReadAllText(Path.Combine(Deploy, "tinyserver.service"))
                .Replace("ExecStart=/opt/tinyserver/TinyServer.Server", $"ExecStart={executable}", StringComparison.Ordinal);
            string path = Path.Combine(directory, "tinyserver.service");
            await File.WriteAllTextAsync(path, unit);

            ProcessResult result = await ProcessRunner.RunAsync(analyze, ["verify", path]);
            Assert.True(result.ExitCode == 0, $"systemd-analyze verify: {result.StandardOutput}{result.StandardError}");
            Assert.DoesNotContain("tinyserver.service", result.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static ServerOptions LoadOptions(IDictionary<string, string> environment)
    {
        Assert.All(environment.Keys, key => Assert.StartsWith(ServerOptionsLoader.EnvironmentPrefix, key, StringComparison.Ordinal));
        return ServerOptionsLoader.Load([], new System.Collections.Hashtable(environment.ToDictionary(kv => (object)kv.Key, kv => (object?)kv.Value)), settingsFile: null)!;
    }

    private static YamlMappingNode LoadSingle(string relativePath)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(Deploy, relativePath)))
        {
            stream.Load(reader);
        }

        return (YamlMappingNode)Assert.Single(stream.Documents).RootNode;
    }

    private static YamlMappingNode Map(YamlMappingNode node, string key) => (YamlMappingNode)node.Children[key];

    private static string Scalar(YamlMappingNode node, string key) => ((YamlScalarNode)node.Children[key]).Value ?? "";

    // ENV KEY=value lines, including continuation lines (KEY=value \).
    [GeneratedRegex(@"(TINYSERVER_[A-Z_]+)=(\S+)")]
    private static partial Regex EnvironmentAssignment();
}
