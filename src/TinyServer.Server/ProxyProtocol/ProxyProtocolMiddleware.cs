using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using TinyServer.Protocol;

namespace TinyServer.Server;

/// <summary>Set on a connection whose PROXY protocol header was accepted: the proxy that sent it, and the header.</summary>
public sealed record ProxyProtocolFeature(EndPoint? Proxy, ProxyHeader Header);

/// <summary>
/// Kestrel connection middleware for the PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2), in front
/// of <see cref="LineConnectionHandler"/> on the plain TCP endpoints when <see cref="ServerOptions.ProxyProtocol"/> is
/// on. Nothing is sent before a complete, valid header: a peer that is not a trusted proxy is closed at once, a
/// malformed header as soon as it shows, a header not complete within the timeout (or cut by the peer) when that
/// happens. On success the connection's <see cref="ConnectionContext.RemoteEndPoint"/> becomes the original
/// client's (the proxy's own stays for a LOCAL command, a health check), so logs and limits use it; the proxy's
/// address is kept in <see cref="ProxyProtocolFeature"/>. Connections waiting for a header are not admitted yet:
/// they count against no connection limit, only for descriptors, and for at most the header timeout.
/// </summary>
public sealed class ProxyProtocolMiddleware(ServerOptions options, ConnectionTracker tracker, TimeProvider time, ILogger<ProxyProtocolMiddleware> logger)
{
    private readonly TimeSpan _timeout = TimeSpan.FromSeconds(options.ProxyHeaderTimeoutSeconds);

    public async Task OnConnectedAsync(ConnectionContext connection, ConnectionDelegate next)
    {
        EndPoint? peer = connection.RemoteEndPoint;
        if (!IsTrusted(peer))
        {
            Reject(connection, ProxyRejection.UntrustedPeer, "not a trusted proxy");
            return;
        }

        ProxyHeader? header;
        using (var deadline = new CancellationTokenSource(_timeout, time)) // Running before the connection counts as waiting.
        {
            tracker.HeaderAwaited();
            try
            {
                header = await ReadHeaderAsync(connection, deadline);
            }
            finally
            {
                tracker.HeaderDone();
            }
        }

        if (header is null)
        {
            return;
        }

        tracker.CountProxyAccepted();
        connection.Features.Set(new ProxyProtocolFeature(peer, header));
        if (header.Source is not null)
        {
            connection.RemoteEndPoint = header.Source;
            connection.LocalEndPoint = header.Destination;
        }

        if (logger.IsEnabled(LogLevel.Debug))
        {
            Log.ProxyHeaderAccepted(logger, connection.ConnectionId, header.Version, header.Command.ToString(), peer, connection.RemoteEndPoint);
        }

        await next(connection);
    }

    private async Task<ProxyHeader?> ReadHeaderAsync(ConnectionContext connection, CancellationTokenSource deadline)
    {
        PipeReader input = connection.Transport.Input;
        using CancellationTokenRegistration onShutdown = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?
            .ConnectionClosedRequested.Register(static state => ((CancellationTokenSource)state!).Cancel(), deadline) ?? default;
        try
        {
            while (true)
            {
                ReadResult result = await input.ReadAsync(deadline.Token);
                ReadOnlySequence<byte> buffer = result.Buffer;
                ProxyHeaderResult parsed = ProxyHeader.TryParse(buffer);
                switch (parsed.Status)
                {
                    case ProxyHeaderStatus.Valid:
                        // Only the header is consumed: what the client sent after it is the protocol's, and is read at once.
                        input.AdvanceTo(buffer.GetPosition(parsed.Consumed));
                        return parsed.Header;
                    case ProxyHeaderStatus.Invalid:
                        input.AdvanceTo(buffer.Start, buffer.End);
                        Reject(connection, ProxyRejection.InvalidHeader, parsed.Error!);
                        return null;
                    default:
                        input.AdvanceTo(buffer.Start, buffer.End);
                        if (result.IsCompleted || result.IsCanceled)
                        {
                            Reject(connection, ProxyRejection.ClosedEarly, "closed before a complete PROXY header");
                            return null;
                        }

                        break;
                }
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            if (IsShuttingDown(connection))
            {
                // Shutdown while waiting: not the peer's fault, not counted.
                if (logger.IsEnabled(LogLevel.Debug))
                {
                    Log.ProxyRejected(logger, connection.ConnectionId, connection.RemoteEndPoint, "shutting down before a complete PROXY header");
                }
            }
            else
            {
                Reject(connection, ProxyRejection.Timeout, "no complete PROXY header within the timeout");
            }

            return null;
        }
        catch (Exception e) when (e is IOException or ConnectionAbortedException or ConnectionResetException)
        {
            Reject(connection, ProxyRejection.ClosedEarly, "closed before a complete PROXY header");
            return null;
        }
    }

    private static bool IsShuttingDown(ConnectionContext connection) =>
        connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested.IsCancellationRequested == true;

    private bool IsTrusted(EndPoint? peer)
    {
        if (peer is not IPEndPoint ip)
        {
            return false;
        }

        IPAddress address = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
        foreach (IPNetwork network in options.TrustedProxies)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    // Nothing is written: returning ends the connection (with a reset if the peer's bytes are left unread, which is
    // what the specification asks for: abort, so that the sender notices).
    private void Reject(ConnectionContext connection, ProxyRejection reason, string detail)
    {
        tracker.CountProxyRejected(reason);
        if (logger.IsEnabled(LogLevel.Debug))
        {
            Log.ProxyRejected(logger, connection.ConnectionId, connection.RemoteEndPoint, detail);
        }
    }
}
