using System.Net.Sockets;
using TinyServer.Interop;

namespace TinyServer.LoadGen;

/// <summary>
/// A connection's dialling: the non-blocking connect, the banner, redials of dials stuck past --retry-after, and the
/// connect errors by reason. Once greeted it is open (<see cref="Opened"/>) and the load runs in Connection.cs. A
/// connection that ended after a reply is dialled again at once (a reconnect); each later dial, after a failed one or
/// after a new connection ended before any reply, waits --redial-backoff, doubling up to --redial-backoff-max (a reply
/// starts it again from --redial-backoff), until --connect-timeout after the first end: then it counts one connect
/// error and is not replaced.
/// </summary>
internal sealed partial class Connection
{
    private const string NoReplyOnReconnect = "no reply on any reconnect within --connect-timeout";

    private long _dialStarted;
    private bool _opened;
    private bool _redialling;
    private bool _ended;
    private bool _reopened; // Opened again since the first end without a reply since.
    private long _redialSince;
    private long _backoff;
    private long _retryAt;
    private string _lastDialFailure = "";

    public bool Dialling => State is ConnectionState.Connecting or ConnectionState.Handshaking or ConnectionState.Greeting;

    /// <summary>Starts a non-blocking connect; the banner (or failure) comes through <see cref="OnEvent"/>.</summary>
    public void Dial(long now)
    {
        _generation++;
        _run.Dialling++;
        State = ConnectionState.Connecting;
        _dialStarted = now;
        _receive.Reset();
        _send.Clear();
        _wantWrite = false;
        Socket socket;
        bool unix = _run.EndPoint.AddressFamily == AddressFamily.Unix;
        try
        {
            socket = new Socket(_run.EndPoint.AddressFamily, SocketType.Stream, unix ? ProtocolType.Unspecified : ProtocolType.Tcp) { Blocking = false };
            if (!unix)
            {
                socket.NoDelay = true;
            }
        }
        catch (SocketException e)
        {
            DialFailed(ErrorCounts.Describe(e.SocketErrorCode)); // No file descriptor left (see ulimit -n).
            return;
        }

        _socket = socket;
        try
        {
            socket.Connect(_run.EndPoint);
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
        {
            if (unix)
            {
                // A Unix socket connects at once or not at all: EAGAIN means the listen backlog is full. The dial
                // stays pending and --retry-after makes it again, as for a TCP dial whose banner never comes.
                return;
            }

            // Under way: the socket becomes writable when connected.
        }
        catch (SocketException e)
        {
            // A Unix socket path without a socket comes back as EADDRNOTAVAIL: say what it means.
            DialFailed(unix && e.SocketErrorCode == SocketError.AddressNotAvailable ? "no such socket" : ErrorCounts.Describe(e.SocketErrorCode));
            return;
        }

        _run.Epoll.Register(socket, Token, Epoll.Readable | Epoll.Writable);
    }

    /// <summary>A dial stuck past --retry-after (its banner never came, e.g. after a listen backlog overflow) is made again.</summary>
    public void RedialIfStuck(long now)
    {
        if (Dialling && _run.RetryAfter > 0 && now - _dialStarted > _run.RetryAfter)
        {
            Close();
            _run.Dialling--;
            _run.ConnectRetries++;
            Dial(now);
        }
    }

    /// <summary>
    /// A redial waiting after a failure is made when its wait is over; one still not open --connect-timeout after its
    /// connection ended gives up.
    /// </summary>
    public void RetryIfDue(long now)
    {
        if (!_redialling)
        {
            return;
        }

        if (State == ConnectionState.Waiting && now >= _retryAt)
        {
            _run.Waiting--;
            if (now - _redialSince >= _run.ConnectTimeout)
            {
                _run.Errors.AddConnect(_reopened ? NoReplyOnReconnect : _lastDialFailure);
                End(ConnectionState.Dead);
                return;
            }

            State = ConnectionState.Idle;
            _run.DialQueue.Enqueue(this);
        }
        else if (Dialling && now - _redialSince >= _run.ConnectTimeout)
        {
            Close();
            DialFailed(_reopened ? NoReplyOnReconnect : DialStuckReason);
        }
    }

    /// <summary>At the end of the connect phase (--connect-timeout): a connection not open by then has failed.</summary>
    public void GiveUpIfNotOpen()
    {
        if (Dialling)
        {
            DialFailed(DialStuckReason, final: true);
        }
        else if (State == ConnectionState.Waiting)
        {
            _run.Waiting--;
            _run.Errors.AddConnect(_lastDialFailure);
            End(ConnectionState.Dead);
        }
        else if (State == ConnectionState.Idle)
        {
            _run.Errors.AddConnect("not dialled within --connect-timeout");
            End(ConnectionState.Dead);
        }
    }

    // Why a dial not done in time failed: where it was stuck.
    private string DialStuckReason => State switch
    {
        ConnectionState.Connecting => "not connected within --connect-timeout",
        ConnectionState.Handshaking => "no TLS handshake within --connect-timeout",
        _ => "no banner within --connect-timeout",
    };

    private void OnConnected(long now)
    {
        if (_socket!.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error) is int error and not 0)
        {
            DialFailed(ErrorCounts.Describe((SocketError)error));
            return;
        }

        _run.Epoll.Change(_socket, Token, Epoll.Readable);
        if (_tls is not null)
        {
            StartHandshake(now);
        }
        else if (_workload.Redis)
        {
            Opened(now);
        }
        else
        {
            State = ConnectionState.Greeting;
        }
    }

    private void ReceiveBanner(long now)
    {
        int received = ReceiveBytes(out SocketError error);
        if (error == SocketError.WouldBlock)
        {
            return;
        }

        if (error != SocketError.Success || received == 0)
        {
            // Refused, or closed before its banner (a full server closes like this).
            DialFailed(received == 0 && error == SocketError.Success ? "closed before the banner" : ErrorCounts.Describe(error));
            return;
        }

        _receive.Received(received);
        switch (_receive.ReadBanner(Workload.Banner))
        {
            case null:
                return; // Not all of it yet.
            case false:
                DialFailed("wrong banner");
                return;
            default:
                Opened(now);
                return;
        }
    }

    private void Opened(long now)
    {
        _run.Dialling--;
        State = ConnectionState.Open;
        if (_opened)
        {
            _run.Reconnects++;
        }

        _opened = true;
        _reopened = _redialling;
        _redialling = false;
        _quitting = false;
        _byeSeen = false;
        _sessionLeft = _run.Options.RequestsPerSession ?? long.MaxValue;
        _lastActivity = now;
        int resend = _inFlight.Count; // Requests the server answered with ERROR SHUTTING_DOWN: they go first.
        if (resend > 0)
        {
            for (int i = 0; i < resend; i++)
            {
                _send.Append(_workload.Requests[_inFlight.CommandAt(i)]);
            }

            _run.Resent += resend;
            _sessionLeft = Math.Max(0, _sessionLeft - resend);
            Flush(now);
            if (State != ConnectionState.Open)
            {
                return;
            }
        }

        Pump(now);
    }

    // A dial that failed. A redial (of a connection that ended) is tried again after a short wait, until
    // --connect-timeout after the end; any other failure is a connect error, and the connection is not replaced.
    private void DialFailed(string reason, bool final = false)
    {
        _run.Dialling--;
        if (_redialling && !final)
        {
            long now = Clock.Now;
            if (now - _redialSince < _run.ConnectTimeout)
            {
                Close();
                _lastDialFailure = reason;
                WaitToRedial(now);
                return;
            }
        }

        _run.Errors.AddConnect(reason);
        End(ConnectionState.Dead);
    }

    // The next dial of a reconnect, after a failed dial or a connection that ended before any reply: after the
    // backoff, which doubles each time up to --redial-backoff-max (RetryIfDue makes it). When that is not before
    // --connect-timeout after the first end, no dial would be made: it gives up now instead of at the end of the wait.
    private void WaitToRedial(long now)
    {
        if (now + _backoff - _redialSince >= _run.ConnectTimeout)
        {
            _run.Errors.AddConnect(_reopened ? NoReplyOnReconnect : _lastDialFailure);
            End(ConnectionState.Dead);
            return;
        }

        State = ConnectionState.Waiting;
        _retryAt = now + _backoff;
        _backoff = _run.NextRedialWait(_backoff);
        _run.Waiting++;
    }
}
