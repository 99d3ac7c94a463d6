using System.Net.Sockets;
using TinyServer.Interop;

namespace TinyServer.LoadGen;

/// <summary>
/// A connection's bytes in and out: straight on the socket, or through its <see cref="TlsChannel"/> with --tls. Over
/// TLS the handshake follows the TCP connect (<see cref="ConnectionState.Handshaking"/>, part of the dial), and every
/// event goes through <see cref="OnTlsEvent"/>: a handshake step, then the usual banner and reply handling reads the
/// decrypted bytes, as many times as the channel has some (until <c>SSL_read</c> would block, as the C reference does).
/// </summary>
internal sealed partial class Connection
{
    private readonly TlsChannel? _tls;

    private static TlsChannel? NewTlsChannel(RunState run) =>
        run.OpenSsl is { } openSsl ? new TlsChannel(openSsl) : null;

    // Bytes of the server (decrypted, over TLS) into the receive buffer.
    private int ReceiveBytes(out SocketError error) =>
        _tls is null ? _socket!.Receive(_receive.Free, SocketFlags.None, out error) : _tls.TakeRead(out error);

    // Bytes to the server: what the socket took (over TLS, what SSL_write took: the rest goes when it is writable).
    private int SendBytes(ReadOnlySpan<byte> bytes, out SocketError error) =>
        _tls is null ? _socket!.Send(bytes, SocketFlags.None, out error) : _tls.Send(bytes, out error);

    private void StartHandshake(long now)
    {
        State = ConnectionState.Handshaking;
        _tls!.Start(_socket!);
        OnTlsEvent(0, now);
    }

    private void OnTlsEvent(uint events, long now)
    {
        TlsChannel tls = _tls!;
        if (State == ConnectionState.Connecting)
        {
            OnConnected(now); // Starts the handshake.
            return;
        }

        if ((events & Epoll.Writable) != 0)
        {
            tls.OnWritable();
        }

        if ((events & (Epoll.Readable | Epoll.Error | Epoll.HangUp)) != 0)
        {
            tls.OnReadable();
        }

        if (State == ConnectionState.Handshaking)
        {
            switch (tls.HandshakeOutcome)
            {
                case null:
                    WaitForSocket(tls.WaitsForWritable);
                    return;
                case "":
                    if (now >= _run.MeasureStart && now <= _run.RecordEnd)
                    {
                        _run.Handshakes++;
                        _run.ResumedHandshakes += tls.Resumed ? 1 : 0;
                    }

                    if (_workload.Redis)
                    {
                        Opened(now);
                    }
                    else
                    {
                        State = ConnectionState.Greeting;
                    }

                    break;
                case string failure:
                    DialFailed(failure);
                    return;
            }
        }

        while (State == ConnectionState.Greeting && tls.ReadReady(_receive.Free))
        {
            ReceiveBanner(now);
        }

        if (State == ConnectionState.Open && _wantWrite)
        {
            Flush(now);
        }

        while (State == ConnectionState.Open && tls.ReadReady(_receive.Free))
        {
            Receive(now);
        }

        if (State is ConnectionState.Greeting or ConnectionState.Open)
        {
            WaitForSocket(_wantWrite || tls.WaitsForWritable);
        }
    }

    // Readable always; writable too while bytes wait for the socket.
    private void WaitForSocket(bool pending)
    {
        if (pending != _wantWrite && _socket is not null)
        {
            _wantWrite = pending;
            _run.Epoll.Change(_socket, Token, pending ? Epoll.Readable | Epoll.Writable : Epoll.Readable);
        }
    }
}
