using System.Globalization;

namespace TinyServer.Server;

/// <summary>
/// The runtime's socket engine reads its settings from two environment variables, once, when the process opens its
/// first socket. <see cref="Configure"/> sets them from the options, so it must run before that (Program does it first).
/// </summary>
public static class SocketEngine
{
    public const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
    public const string ThreadCountVariable = "DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT";

    public static void Configure(ServerOptions options)
    {
        if (options.Transport != TransportKind.Sockets)
        {
            return; // The runtime's engine then only accepts connections.
        }

        // Completions run on the event thread only together with Kestrel's inline scheduling, which the transport sets.
        Environment.SetEnvironmentVariable(InlineCompletionsVariable, options.InlineIo ? "1" : "0");
        if (options.IoThreads > 0)
        {
            Environment.SetEnvironmentVariable(ThreadCountVariable, options.IoThreads.ToString(CultureInfo.InvariantCulture));
        }
    }
}
