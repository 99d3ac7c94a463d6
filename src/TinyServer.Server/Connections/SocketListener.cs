using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace TinyServer.Server;

/// <summary>
/// Accepts from one listening socket and hands each connection to the transport. Unlike Kestrel's own listener, it
/// does not accept at all while <see cref="ConnectionAdmission"/> says no, and when accepting fails for lack of
/// resources it waits and retries (<see cref="AcceptBackoff"/>) instead of retrying at once; Kestrel stops accepting
/// for good if <see cref="AcceptAsync"/> throws. The pending connections stay in the listen backlog meanwhile and are
/// served as soon as clients leave.
/// </summary>
/// <param name="unixPath">The socket file of a Unix domain socket listener, removed when it stops unless inherited; null for TCP.</param>
/// <param name="inheritedDescriptor">
/// The descriptor of a socket passed by socket activation (<paramref name="socket"/> does not own it), or -1. Stopping
/// then closes this process's descriptor only: no shutdown(2), no SO_LINGER, no file removed; the connections queued
/// on it stay queued for the next process that serves it.
/// </param>
internal sealed class SocketListener(Socket socket, string? unixPath, ConnectionAdmission admission, IConnectionTransport transport, ILogger logger, int inheritedDescriptor = -1) : IConnectionListener
{
    private readonly AcceptBackoff _backoff = new();

    /// <summary>Cancelled when the listener is closed: ends a wait between retries, which no accept would end.</summary>
    private readonly CancellationTokenSource _unbound = new();
    private int _closed;

    public EndPoint EndPoint { get; } = socket.LocalEndPoint!;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Socket? accepted = null;
            try
            {
                if (_unbound.IsCancellationRequested)
                {
                    return null; // Closed while waiting to retry.
                }

                if (!admission.HasRoom)
                {
                    throw new SocketException((int)SocketError.TooManyOpenSockets, "no descriptors to spare for another connection");
                }

                accepted = await socket.AcceptAsync(cancellationToken);
                if (unixPath is null)
                {
                    accepted.NoDelay = true;
                }

                ConnectionContext connection = transport.Create(accepted);
                if (unixPath is not null)
                {
                    // A Unix client's own address is almost always unnamed: name the socket it came through.
                    connection.RemoteEndPoint = new UnixPeer(unixPath);
                }
                _backoff.Reset();
                return connection;
            }
            catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException
                || e is SocketException { SocketErrorCode: SocketError.OperationAborted })
            {
                accepted?.Dispose();
                return null; // Unbound: the server is stopping.
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
            {
                // The peer gave up while waiting in the backlog: take the next one.
            }
            catch (Exception e)
            {
                // Out of descriptors or memory: wait and retry, backing off; the wait must not need resources either
                // (the timer was started at bind). One warning per episode, not one per retry.
                accepted?.Dispose();
                int delayMs = _backoff.NextDelayMs();
                if (_backoff.EpisodeStarted)
                {
                    Log.AcceptFailed(logger, EndPoint, e.Message);
                }

                Log.AcceptRetry(logger, EndPoint, e.ToString(), delayMs);
                try
                {
                    await Task.Delay(delayMs, _unbound.Token);
                }
                catch (OperationCanceledException)
                {
                    return null; // Unbound while waiting: the server is stopping.
                }
            }
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => DisposeAsync();

    public ValueTask DisposeAsync()
    {
        _unbound.Cancel();
        socket.Dispose(); // An inherited socket's Socket does not own the descriptor: this only ends the pending accept.
        if (Interlocked.Exchange(ref _closed, 1) == 0)
        {
            if (inheritedDescriptor >= 0)
            {
                SocketActivation.Close(inheritedDescriptor);
            }
            else if (unixPath is not null)
            {
                UnixSocketFile.Remove(unixPath);
            }
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>The remote end of a Unix socket connection, as logs show it: <c>unix:/path/of/the/listening/socket</c>.</summary>
internal sealed class UnixPeer(string path) : EndPoint
{
    public override AddressFamily AddressFamily => AddressFamily.Unix;

    public override string ToString() => $"unix:{path}";
}
