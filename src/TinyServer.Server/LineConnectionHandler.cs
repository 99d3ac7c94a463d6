using System.Buffers;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>
/// One TinyServer connection on Kestrel: the banner, then the canonical pipe loop. Every complete line of a read
/// is answered into the output pipe, which is flushed once per read.
/// </summary>
public sealed class LineConnectionHandler(ServerOptions options, TimeProvider time, ILogger<LineConnectionHandler> logger) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        bool logging = logger.IsEnabled(LogLevel.Debug);
        if (logging)
        {
            Log.ConnectionOpened(logger, connection.ConnectionId, connection.RemoteEndPoint);
        }

        PipeReader input = connection.Transport.Input;
        PipeWriter output = connection.Transport.Output;
        using var session = new ServerSession(time, options.MaxLineLength);
        try
        {
            Responses.WriteBanner(output);
            bool open = !(await output.FlushAsync()).IsCompleted;
            while (open)
            {
                ReadResult result = await input.ReadAsync();
                ReadOnlySequence<byte> buffer = result.Buffer;
                SequencePosition consumed = buffer.Start;
                try
                {
                    open = session.Process(buffer, result.IsCompleted, output, out consumed) && !result.IsCanceled;
                }
                finally
                {
                    input.AdvanceTo(consumed, buffer.End);
                }

                open &= !(await output.FlushAsync()).IsCompleted;
            }
        }
        catch (Exception e) when (e is IOException or ConnectionAbortedException or OperationCanceledException)
        {
            // A peer that resets or vanishes is routine: no stack trace above Debug.
            if (logging)
            {
                Log.ConnectionFailed(logger, connection.ConnectionId, connection.RemoteEndPoint, e.Message);
            }
        }

        if (logging)
        {
            Log.ConnectionClosed(logger, connection.ConnectionId, connection.RemoteEndPoint, session.CloseReason, session.Requests);
        }
    }
}
