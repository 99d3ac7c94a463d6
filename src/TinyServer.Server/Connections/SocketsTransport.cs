using System.Globalization;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace TinyServer.Server;

/// <summary>
/// Kestrel's socket transport (<c>--transport sockets</c>): <see cref="SocketConnectionContextFactory"/>, configured
/// here, and only here, from <see cref="ServerOptions"/>, together with the runtime's socket engine it runs on
/// (<see cref="SetRuntimeEnvironment"/>).
/// </summary>
internal sealed class SocketsTransport(ServerOptions options, ILoggerFactory loggers) : IConnectionTransport
{
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
    public const string ThreadCountVariable = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";

    private readonly SocketConnectionContextFactory _connections = new(
        new SocketConnectionFactoryOptions
        {
            MaxReadBufferSize = options.MaxReadBuffer,
            MaxWriteBufferSize = options.MaxWriteBuffer,
            UnsafePreferInlineScheduling = options.InlineIo,
            IOQueueCount = options.IoQueues,
            WaitForDataBeforeAllocatingBuffer = options.WaitForData,
        },
        loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets"));

    /// <summary>Not counted: admission counts these connections in <see cref="ConnectionTracker"/>.</summary>
    public long Open => 0;

    public ConnectionContext Create(Socket accepted) => _connections.Create(accepted);

    public void Dispose() => _connections.Dispose();

    /// <summary>
    /// The runtime's socket engine reads its settings from two environment variables, once, when the process opens
    /// its first socket: this sets them from the options when this transport is chosen, so it must run before that
    /// (Program does it first). With the epoll transport the runtime's engine only accepts, and nothing is set.
    /// </summary>
    public static void SetRuntimeEnvironment(ServerOptions options)
    {
        if (options.Transport != TransportKind.Sockets)
        {
            return;
        }

        // Completions run on the event thread only together with Kestrel's inline scheduling, which the transport sets.
        Environment.SetEnvironmentVariable(InlineCompletionsVariable, options.InlineIo ? "1" : "0");
        if (options.IoThreads > 0)
        {
            Environment.SetEnvironmentVariable(ThreadCountVariable, options.IoThreads.ToString(CultureInfo.InvariantCulture));
        }
    }
}
