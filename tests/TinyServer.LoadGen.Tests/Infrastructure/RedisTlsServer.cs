using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace TinyServer.LoadGen.Tests.Infrastructure;

/// <summary>
/// A real Redis (Debian's redis-server, installed by tests/install-peers.sh) serving TLS only, on 127.0.0.1 and a
/// free port, with a self-signed ECDSA P-256 certificate for localhost and 127.0.0.1, nothing saved to disk. Killed
/// on dispose.
/// </summary>
public sealed class RedisTlsServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;

    private RedisTlsServer(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        TlsPort = port;
    }

    public int TlsPort { get; }

    public static async Task<RedisTlsServer> StartAsync()
    {
        string directory = Directory.CreateTempSubdirectory("loadgen-redis-").FullName;
        (string certificate, string key) = WriteCertificate(directory);
        int port = FreePort();
        var start = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = directory,
        };
        foreach (string argument in (string[])[
            "--port", "0", "--bind", "127.0.0.1", "--tls-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tls-cert-file", certificate, "--tls-key-file", key, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        {
            start.ArgumentList.Add(argument);
        }

        Process process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new RedisTlsServer(process, directory, port);
        try
        {
            await server.WaitListeningAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync().WaitAsync(Timeouts.Io);
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    // Polls the port (at most Timeouts.Io) until redis-server accepts connections.
    private async Task WaitListeningAsync()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}");
            }

            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, TlsPort).WaitAsync(Timeouts.Io);
                return;
            }
            catch (SocketException) when (clock.Elapsed < Timeouts.Io)
            {
                await Task.Delay(50);
            }
        }
    }

    private static (string Certificate, string Key) WriteCertificate(string directory)
    {
        using X509Certificate2 certificate = Certificates.SelfSigned();
        using ECDsa key = certificate.GetECDsaPrivateKey()!;
        string certificatePath = Path.Combine(directory, "cert.pem");
        string keyPath = Path.Combine(directory, "key.pem");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
