using System.Collections;
using System.Globalization;
using TinyServer.Server;
using TinyServer.Tests.Endpoints;

namespace TinyServer.Tests.Operations;

/// <summary>Socket activation's variables (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES) as the options loader reads them.</summary>
[Trait("Tier", "unit")]
public class SocketActivationVariablesTests
{
    [Fact]
    public void The_variables_count_only_for_the_process_LISTEN_PID_names()
    {
        int pid = Environment.ProcessId;
        Assert.Empty(SocketActivation.Read(Variables(null, "1", null), pid));
        Assert.Empty(SocketActivation.Read(Variables(Text(pid), null, null), pid));
        Assert.Empty(SocketActivation.Read(Variables(Text(pid + 1), "2", null), pid));
        Assert.Equal([new InheritedSocket(3, ""), new InheritedSocket(4, "")], SocketActivation.Read(Variables(Text(pid), "2", null), pid));

        IReadOnlyList<InheritedSocket> named = SocketActivation.Read(Variables(Text(pid), "3", "tinyserver:tls:TLS"), pid);
        Assert.Equal([(3, "tinyserver", false), (4, "tls", true), (5, "TLS", false)], named.Select(s => (s.Descriptor, s.Name, s.Tls)));
    }

    [Theory]
    [InlineData("x", "1", null, "LISTEN_PID 'x' is not a process id")]
    [InlineData("{pid}", "0", null, "LISTEN_FDS '0' is not a descriptor count (1 or more)")]
    [InlineData("{pid}", "-1", null, "LISTEN_FDS '-1' is not a descriptor count (1 or more)")]
    [InlineData("{pid}", "two", null, "LISTEN_FDS 'two' is not a descriptor count (1 or more)")]
    [InlineData("{pid}", "2", "tinyserver", "LISTEN_FDNAMES 'tinyserver' names 1 sockets, LISTEN_FDS passes 2")]
    [InlineData("{pid}", "1", "a:b", "LISTEN_FDNAMES 'a:b' names 2 sockets, LISTEN_FDS passes 1")]
    public void Malformed_variables_are_a_bad_option(string pid, string fds, string? names, string message)
    {
        OptionsException e = Assert.Throws<OptionsException>(() => SocketActivation.Read(Variables(pid.Replace("{pid}", Text(Environment.ProcessId), StringComparison.Ordinal), fds, names), Environment.ProcessId));
        Assert.Equal($"socket activation: {message}", e.Message);
    }

    [Fact]
    public void A_tls_socket_takes_the_certificate_without_a_tls_port_and_the_options_carry_the_sockets()
    {
        TestCertificate certificate = TestCertificate.Instance;
        Hashtable environment = Variables(Text(Environment.ProcessId), "2", "tinyserver:tls");
        ServerOptions options = ServerOptionsLoader.Load(["--tls-cert", certificate.CertificatePem, "--tls-key", certificate.KeyPem], environment, settingsFile: null)!;
        Assert.Equal([new InheritedSocket(3, "tinyserver"), new InheritedSocket(4, "tls")], options.InheritedSockets);
        Assert.NotNull(options.TlsCertificate);
        Assert.Null(options.TlsPort);

        // Without a tls socket a certificate still needs --tls-port, as without socket activation.
        OptionsException e = Assert.Throws<OptionsException>(() => ServerOptionsLoader.Load(
            ["--tls-cert", certificate.CertificatePem], Variables(Text(Environment.ProcessId), "1", "tinyserver"), settingsFile: null));
        Assert.Equal("--tls-cert on the command line: a certificate needs --tls-port, the port to serve TLS on", e.Message);
    }

    private static Hashtable Variables(string? pid, string? fds, string? names)
    {
        var environment = new Hashtable();
        foreach ((string key, string? value) in new[] { ("LISTEN_PID", pid), ("LISTEN_FDS", fds), ("LISTEN_FDNAMES", names) })
        {
            if (value is not null)
            {
                environment[key] = value;
            }
        }

        return environment;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
