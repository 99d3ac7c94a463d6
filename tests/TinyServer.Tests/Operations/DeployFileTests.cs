using System.Text.RegularExpressions;
using TinyServer.Server;
using TinyServer.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace TinyServer.Tests.Operations;

/// <summary>
/// The deployment files under deploy/, checked without a container engine or a cluster: the Kubernetes manifests
/// parse and say what README.md promises, every option they set is one the server accepts, the systemd units pass
/// <c>systemd-analyze verify</c> and agree on the listening sockets, and the paths agree with the documented publish layout.
/// </summary>
[Trait("Tier", "process")]
public partial class DeployFileTests
{
    private static readonly string Deploy = Path.Combine(BuiltPrograms.RepositoryRoot, "deploy");

    [Fact]
    public void The_deployment_runs_unprivileged_with_http_probes_on_the_health_port_limits_and_a_matching_service()
    {
        YamlMappingNode deployment = LoadSingle("k8s/deployment.yaml");
        YamlMappingNode service = LoadSingle("k8s/service.yaml");
        Assert.Equal(("apps/v1", "Deployment"), (Scalar(deployment, "apiVersion"), Scalar(deployment, "kind")));
        Assert.Equal(("v1", "Service"), (Scalar(service, "apiVersion"), Scalar(service, "kind")));

        YamlMappingNode pod = Map(Map(deployment, "spec"), "template");
        YamlMappingNode podSpec = Map(pod, "spec");
        Assert.Equal("true", Scalar(Map(podSpec, "securityContext"), "runAsNonRoot"));

        var container = (YamlMappingNode)Assert.Single(((YamlSequenceNode)podSpec.Children["containers"]).Children);
        YamlMappingNode security = Map(container, "securityContext");
        Assert.Equal(("true", "false"), (Scalar(security, "readOnlyRootFilesystem"), Scalar(security, "allowPrivilegeEscalation")));
        foreach (string kind in new[] { "requests", "limits" })
        {
            YamlMappingNode amounts = Map(Map(container, "resources"), kind);
            Assert.NotEmpty(Scalar(amounts, "cpu"));
            Assert.NotEmpty(Scalar(amounts, "memory"));
        }

        // The probes ask the health port (by name), which is the port the environment makes it serve them on:
        // readiness on /readyz, liveness on /healthz.
        Dictionary<string, string> ports = ((YamlSequenceNode)container.Children["ports"]).Children.Cast<YamlMappingNode>()
            .ToDictionary(p => Scalar(p, "name"), p => Scalar(p, "containerPort"));
        foreach ((string probe, string path) in new[] { ("readinessProbe", "/readyz"), ("livenessProbe", "/healthz") })
        {
            YamlMappingNode get = Map(Map(container, probe), "httpGet");
            Assert.Equal(("health", path), (Scalar(get, "port"), Scalar(get, "path")));
        }

        Dictionary<string, string> environment = ((YamlSequenceNode)container.Children["env"]).Children.Cast<YamlMappingNode>()
            .ToDictionary(e => Scalar(e, "name"), e => Scalar(e, "value"));
        ServerOptions options = LoadOptions(environment);
        Assert.Equal(ports["tinyserver"], options.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(ports["health"], options.HealthPort?.ToString(System.Globalization.CultureInfo.InvariantCulture));

        // Stopping: the lame duck outlasts readiness' failure detection, and the grace period the delay plus the drain.
        YamlMappingNode readiness = Map(container, "readinessProbe");
        Assert.True(options.DrainDelaySeconds > Int(readiness, "periodSeconds") * Int(readiness, "failureThreshold"), $"drain delay {options.DrainDelaySeconds} s");
        Assert.True(Int(podSpec, "terminationGracePeriodSeconds") > options.DrainDelaySeconds + options.ShutdownTimeoutSeconds);
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
        ServerOptions options = LoadOptions(settings["Environment"].Select(e => e.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]));
        Assert.True(int.Parse(Single("TimeoutStopSec"), System.Globalization.CultureInfo.InvariantCulture) > options.DrainDelaySeconds + options.ShutdownTimeoutSeconds);
        Assert.True(int.Parse(Single("LimitNOFILE"), System.Globalization.CultureInfo.InvariantCulture) > defaults.MaxConnections + 200);

        // Behind deploy/haproxy.cfg: a health port, and a lame duck longer than HAProxy's checks take to mark it down.
        Assert.NotNull(options.HealthPort);
        (int inter, int fall) = HaproxyCheckTiming();
        Assert.True(options.DrainDelaySeconds > inter * fall, $"--drain-delay {options.DrainDelaySeconds} s, HAProxy inter {inter} s x fall {fall}");

        // README's install steps copy the publish output (out/tinyserver) to /opt/tinyserver.
        string readme = File.ReadAllText(Path.Combine(BuiltPrograms.RepositoryRoot, "README.md"));
        Assert.Contains("dotnet publish src/TinyServer.Server -c Release -r linux-x64 --self-contained -o out/tinyserver", readme, StringComparison.Ordinal);
        Assert.Contains("sudo cp -r out/tinyserver/. /opt/tinyserver/", readme, StringComparison.Ordinal);
    }

    [Fact]
    public void The_socket_unit_passes_the_servers_loopback_port_to_the_service_as_plain_listening_sockets()
    {
        Dictionary<string, List<string>> socket = UnitSettings("tinyserver.socket");
        Dictionary<string, List<string>> service = UnitSettings("tinyserver.service");
        Assert.Equal(["tinyserver.socket"], service["Sockets"]);
        Assert.Equal(["tinyserver.socket"], service["Requires"]);
        Assert.Contains("tinyserver.socket", service["After"]);

        // The addresses the server binds by itself with the service's options: the same port on 127.0.0.1 and ::1.
        ServerOptions options = LoadOptions(service["Environment"].Select(e => e.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]));
        Assert.Equal(
            options.Bind.Select(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{a}]:{options.Port}" : $"{a}:{options.Port}"),
            socket["ListenStream"]);
        Assert.Equal("ipv6-only", Assert.Single(socket["BindIPv6Only"]));
        Assert.Equal(options.ListenBacklog.ToString(System.Globalization.CultureInfo.InvariantCulture), Assert.Single(socket["Backlog"]));
        Assert.Equal("no", Assert.Single(socket["Accept"])); // one server accepts; Accept=yes would pass connected sockets
        Assert.NotEqual(SocketActivation.TlsName, Assert.Single(socket["FileDescriptorName"])); // plain text
    }

    [Fact]
    public async Task Systemd_analyze_verifies_the_service_and_socket_units()
    {
        // The same units with ExecStart on the built server's executable (verify checks that it exists and runs).
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
            string socketPath = Path.Combine(directory, "tinyserver.socket");
            File.Copy(Path.Combine(Deploy, "tinyserver.socket"), socketPath);

            ProcessResult result = await ProcessRunner.RunAsync(analyze, ["verify", socketPath, path]);
            Assert.True(result.ExitCode == 0, $"systemd-analyze verify: {result.StandardOutput}{result.StandardError}");
            Assert.DoesNotContain("tinyserver.s", result.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task The_haproxy_configuration_is_valid_and_routes_by_readiness_on_each_servers_health_port()
    {
        string path = Path.Combine(Deploy, "haproxy.cfg");
        ProcessResult check = await ProcessRunner.RunAsync(ProcessRunner.RequireTool("haproxy"), ["-c", "-f", path]);
        Assert.True(check.ExitCode == 0, $"haproxy -c: {check.StandardOutput}{check.StandardError}");
        Assert.DoesNotContain("WARNING", check.StandardOutput + check.StandardError, StringComparison.Ordinal);

        string[] lines = [.. File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];
        Assert.Contains("option httpchk", lines);
        Assert.Contains("http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host tinyserver", lines);
        Assert.Contains("http-check expect status 200", lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("tcp-check", StringComparison.Ordinal) || l.StartsWith("agent-check", StringComparison.Ordinal));

        // Each server is checked on a health port of its own, not on its line-protocol port (no PROXY header there).
        Match[] servers = [.. lines.Select(l => ServerLine().Match(l)).Where(m => m.Success)];
        Assert.Equal(2, servers.Length);
        Assert.All(servers, m => Assert.NotEqual(m.Groups["port"].Value, m.Groups["health"].Value));
        Assert.Equal(servers.Length, servers.Select(m => m.Groups["health"].Value).Distinct().Count());
        Assert.DoesNotContain(lines, l => l.Contains("check-send-proxy", StringComparison.Ordinal));
    }

    /// <summary>The check interval and fall count of deploy/haproxy.cfg's <c>default-server</c> line, in seconds and checks.</summary>
    private static (int Inter, int Fall) HaproxyCheckTiming()
    {
        string line = File.ReadAllLines(Path.Combine(Deploy, "haproxy.cfg")).Single(l => l.TrimStart().StartsWith("default-server ", StringComparison.Ordinal));
        Match timing = CheckTiming().Match(line);
        Assert.True(timing.Success, line);
        return (int.Parse(timing.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), int.Parse(timing.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    private static int Int(YamlMappingNode node, string key) => int.Parse(Scalar(node, key), System.Globalization.CultureInfo.InvariantCulture);

    [GeneratedRegex(@"\binter (\d+)s\b.*\bfall (\d+)\b")]
    private static partial Regex CheckTiming();

    [GeneratedRegex(@"^server \S+ 127\.0\.0\.1:(?<port>\d+) port (?<health>\d+)$")]
    private static partial Regex ServerLine();

    /// <summary>A unit file's settings, key to values in order (comments and section headers left out).</summary>
    private static Dictionary<string, List<string>> UnitSettings(string name) =>
        File.ReadAllLines(Path.Combine(Deploy, name))
            .Where(l => l.Length > 0 && l[0] is not ('#' or '['))
            .Select(l => l.Split('=', 2))
            .GroupBy(kv => kv[0], kv => kv[1])
            .ToDictionary(g => g.Key, g => g.ToList());

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
