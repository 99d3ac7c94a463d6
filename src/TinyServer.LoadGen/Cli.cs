using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace TinyServer.LoadGen;

/// <summary>The command line: options in, report out, exit code back (0 no errors, 1 errors, 2 bad usage).</summary>
internal static class Cli
{
    public const int Ok = 0;
    public const int Errors = 1;
    public const int BadUsage = 2;

    public static int Run(IReadOnlyList<string> args, TextWriter output, TextWriter progress)
    {
        LoadOptions options;
        Workload workload;
        EndPoint endPoint;
        FileStream? svg = null;
        try
        {
            LoadOptions? parsed = ArgumentParser.Parse(args, out ParseResult commandLine);
            if (parsed is null)
            {
                // --help, --version or the [suggest] directive: System.CommandLine writes it (exit code 0).
                return commandLine.Invoke(new InvocationConfiguration { Output = output, Error = progress });
            }

            if (!OperatingSystem.IsLinux())
            {
                throw new UsageException("the load generator runs on Linux (it waits on sockets with epoll)");
            }

            if (parsed.Tls && !NativeLibrary.TryLoad("libssl.so.3", out _))
            {
                throw new UsageException("--tls needs OpenSSL 3 (libssl.so.3), which is not installed");
            }

            options = parsed;
            workload = Workload.Create(options);
            endPoint = options.UnixPath is string path ? UnixEndPoint(path) : Resolve(options.Host, options.Port);
            svg = options.SvgPath is string svgPath ? OpenSvg(svgPath) : null;
        }
        catch (UsageException e)
        {
            progress.WriteLine($"tinyserver-loadgen: error: {e.Message}");
            return BadUsage;
        }

        using (svg)
        {
            RunResult result = LoadRun.Run(options, workload, endPoint, progress);
            output.Write(options.Json ? Report.Json(result) : Report.Text(result));
            if (svg is not null)
            {
                using var writer = new StreamWriter(svg);
                writer.Write(SvgChart.Draw(result));
            }

            return result.Errors.Total == 0 ? Ok : Errors;
        }
    }

    private static EndPoint Resolve(string host, int port)
    {
        if (IPAddress.TryParse(host, out IPAddress? address))
        {
            return new IPEndPoint(address, port);
        }

        try
        {
            IPAddress[] addresses = Dns.GetHostAddresses(host);
            IPAddress? chosen = addresses.FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork) ?? addresses.FirstOrDefault();
            return chosen is null ? throw new UsageException($"--host: '{host}' has no address") : new IPEndPoint(chosen, port);
        }
        catch (SocketException e)
        {
            throw new UsageException($"--host: cannot resolve '{host}': {e.Message}");
        }
    }

    private static UnixDomainSocketEndPoint UnixEndPoint(string path)
    {
        try
        {
            return new UnixDomainSocketEndPoint(path);
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"--unix: '{path}' is not a usable socket path: {e.Message}");
        }
    }

    // Opened before the run, so a path that cannot be written is bad usage rather than a lost result.
    private static FileStream OpenSvg(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Create, FileAccess.Write);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--svg: cannot write '{path}': {e.Message}");
        }
    }
}
