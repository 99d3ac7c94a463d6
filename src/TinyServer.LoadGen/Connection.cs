using System.Net.Sockets;
using TinyServer.Interop;
using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>
/// One connection of the load, driven by the event loop: a non-blocking socket with buffers allocated once. Replies
/// are framed where they lie in the receive buffer, checked byte for byte and timed; the next requests are copied
/// from precomputed bytes and sent in one write. Nothing is allocated per request. Its dialling and greeting are in
/// Connection.Dialling.cs; the buffers, the ring of requests in flight, the reply framing and the pacing are types of
/// their own (structs inside it, and a framing loop compiled for its struct sink: splitting them out costs nothing per request).
/// </summary>
internal sealed partial class Connection
{
    private readonly int _index;
    private readonly RunState _run;
    private readonly Workload _workload;
    private readonly int _pipeline;
    private ReceiveBuffer _receive;
    private SendBuffer _send;
    private RequestRing _inFlight;
    private Pacer _pacer;
    private Socket? _socket;
    private uint _generation;
    private bool _wantWrite;
    private int _schedule;
    private long _toSend;
    private long _sessionLeft;
    private bool _quitting;
    private bool _byeSeen;
    private bool _closingNotice;
    private bool _started;
    private long _lastActivity;

    public Connection(int index, RunState run)
    {
        _index = index;
        _run = run;
        _workload = run.Workload;
        _pipeline = run.Options.Pipeline;
        _receive = new ReceiveBuffer(_workload.ReceiveBufferSize(_pipeline));
        _send = new SendBuffer((_pipeline + 1) * _workload.LongestRequest);
        _inFlight = new RequestRing(_pipeline + 1);
        _tls = NewTlsChannel(run);
        _schedule = index % _workload.Schedule.Length;
    }

    public ConnectionState State { get; private set; }

    /// <summary>When the last reply came.</summary>
    public long LastReplyAt { get; private set; }

    /// <summary>The epoll token of the current socket: the connection's index, and a generation so that events of a closed socket are told apart.</summary>
    public ulong Token => ((ulong)_generation << 32) | (uint)_index;

    public static int IndexOf(ulong token) => (int)(uint)token;

    public bool Owns(ulong token) => token == Token;

    /// <summary>Sets this connection's share of the requests and, at --rate, when its first one is due.</summary>
    public void Start(long requests, long firstDue)
    {
        _toSend = requests;
        _started = true;
        _pacer.Start(firstDue);
        if (requests == 0)
        {
            End(ConnectionState.Done); // -n is smaller than -c: nothing for this one to do.
        }
    }

    public void OnEvent(uint events, long now)
    {
        if (_tls is not null)
        {
            OnTlsEvent(events, now);
            return;
        }

        switch (State)
        {
            case ConnectionState.Connecting:
                OnConnected(now);
                break;
            case ConnectionState.Greeting:
                ReceiveBanner(now);
                break;
            case ConnectionState.Open:
                if ((events & Epoll.Writable) != 0 && _wantWrite)
                {
                    Flush(now);
                }

                if (State == ConnectionState.Open && (events & (Epoll.Readable | Epoll.Error | Epoll.HangUp)) != 0)
                {
                    Receive(now);
                }

                break;
            default:
                break;
        }
    }

    /// <summary>Sends every request that may go now: as many as the pipeline has room for (at --rate, those due).</summary>
    public void Pump(long now)
    {
        if (State != ConnectionState.Open || _quitting || now >= _run.IssueEnd)
        {
            return;
        }

        _send.MoveToFront();
        bool wasIdle = _inFlight.Count == 0;
        int before = _send.Length;
        while (_inFlight.Count < _pipeline && _toSend > 0 && _sessionLeft > 0 && _pacer.TryTake(now, _run.RateInterval, out long sentAt))
        {
            int command = _workload.Schedule[_schedule];
            _schedule = _schedule + 1 == _workload.Schedule.Length ? 0 : _schedule + 1;
            _send.Append(_workload.Requests[command]);
            _inFlight.Add(command, sentAt);
            _toSend--;
            _sessionLeft--;
        }

        if (_run.RateInterval > 0 && _inFlight.Count < _pipeline && _toSend > 0 && _sessionLeft > 0)
        {
            _run.NextPace = Math.Min(_run.NextPace, _pacer.NextDue); // Wake the loop when the next request is due.
        }

        if (_sessionLeft == 0)
        {
            _send.Append(_workload.Quit);
            _inFlight.Add(Workload.QuitIndex, now);
            _quitting = true;
        }

        if (_send.Length == before)
        {
            return;
        }

        if (wasIdle)
        {
            _lastActivity = now;
        }

        Flush(now);
    }

    /// <summary>An open connection waiting longer than --reply-timeout counts a timeout and closes.</summary>
    public void CloseIfTimedOut(long now)
    {
        if (State == ConnectionState.Open && (_inFlight.Count > 0 || _quitting) && now - _lastActivity > _run.ReplyTimeout)
        {
            Fail(ErrorKind.Timeout);
        }
    }

    /// <summary>Closes the socket (epoll forgets it with it), when the connection ended or at the end of the run.</summary>
    public void Close()
    {
        _tls?.Abort();
        _socket?.Dispose();
        _socket = null;
    }

    private void Receive(long now)
    {
        int received = ReceiveBytes(out SocketError error);
        if (error == SocketError.WouldBlock)
        {
            return;
        }

        if (error != SocketError.Success || received == 0)
        {
            Ended(now);
            return;
        }

        _lastActivity = now;
        _receive.Received(received);
        if (!TakeReplies(now))
        {
            if (_closingNotice)
            {
                Resend(now);
            }
            else
            {
                Fail(ErrorKind.WrongReply);
            }
        }
        else if (_toSend == 0 && _inFlight.Count == 0 && !_quitting)
        {
            End(ConnectionState.Done);
        }
        else
        {
            Pump(now);
        }
    }

    // The server closed or reset the connection (or a send failed): after BYE that ends the session; otherwise the
    // requests in flight are lost (counted, never sent again: the server may have executed them). Either way the
    // connection is replaced.
    private void Ended(long now)
    {
        if (_byeSeen)
        {
            _run.Sessions++;
        }

        int lost = _inFlight.Count - (QuitInFlight ? 1 : 0); // An unanswered QUIT loses nothing: the session ended anyway.
        if (lost > 0)
        {
            _run.Errors.Add(ErrorKind.Lost, lost);
        }

        _inFlight.Clear();
        Redial(now);
    }

    // ERROR SHUTTING_DOWN (or IDLE_TIMEOUT) came where a reply was awaited: the server answered every line it had
    // read, so every request still in flight was not executed. They stay in the ring and go first on the new
    // connection, timed from their first send. A QUIT among them is dropped: the session ends anyway.
    private void Resend(long now)
    {
        _closingNotice = false;
        if (QuitInFlight)
        {
            _inFlight.DropNewest();
        }

        Redial(now);
    }

    // The QUIT that ends a session is sent last, so it is the newest request in flight until its BYE comes.
    private bool QuitInFlight => _inFlight.Count > 0 && _inFlight.CommandAt(_inFlight.Count - 1) == Workload.QuitIndex;

    // Replaces the connection with a new one, unless its share of a -n run is all answered. The first end since a
    // reply last came (BYE included) is redialled at once; a connection that ended again before any reply waits the
    // backoff, as a failed dial does (a server answering ERROR SHUTTING_DOWN to everything is not hammered).
    // --connect-timeout bounds the replacing from that first end: such a server ends the run too.
    private void Redial(long now)
    {
        Close();
        if (_started && _toSend == 0 && _inFlight.Count == 0)
        {
            End(ConnectionState.Done);
            return;
        }

        _redialling = true;
        if (!_ended || _byeSeen || LastReplyAt > _redialSince)
        {
            _ended = true;
            _reopened = false;
            _redialSince = now;
            _backoff = _run.RedialBackoff;
            State = ConnectionState.Idle;
            _run.DialQueue.Enqueue(this);
        }
        else
        {
            WaitToRedial(now); // Or gives up: "no reply on any reconnect within --connect-timeout".
        }
    }

    private void Fail(ErrorKind kind)
    {
        _run.Errors.Add(kind);
        End(ConnectionState.Dead);
    }

    private void End(ConnectionState state)
    {
        Close();
        State = state;
        _run.Ended++;
    }

    private void Flush(long now)
    {
        int sent = SendBytes(_send.Unsent, out SocketError error);
        if (error is not (SocketError.Success or SocketError.WouldBlock))
        {
            Ended(now); // Reset or closed: as when a read finds it.
            return;
        }

        bool pending = _send.Sent(sent);
        if (pending != _wantWrite)
        {
            _wantWrite = pending;
            _run.Epoll.Change(_socket!, Token, pending ? Epoll.Readable | Epoll.Writable : Epoll.Readable);
        }
    }

    // False when the stream cannot be trusted any more: a reply too long to be one we expect, or one nobody asked for.
    private bool TakeReplies(long now) => _receive.TakeReplies(_workload.Redis, new Answers(this, now));

    // Checks a reply against the oldest request in flight and records its latency.
    private bool OnReply(ReadOnlySpan<byte> reply, long now)
    {
        if (_inFlight.Count == 0)
        {
            IsClosingNotice(reply);
            return false;
        }

        _inFlight.TakeOldest(out int command, out long sentAt);
        if (!_workload.Matches(command, reply))
        {
            if (IsClosingNotice(reply))
            {
                _inFlight.Untake();
                return false;
            }

            _run.Errors.Add(ErrorKind.WrongReply);
        }

        if (command == Workload.QuitIndex)
        {
            // Done sending: a server that lingers to read what a client still sends closes at once. Its close is
            // awaited (Ended); a reset instead shows on the next read, so a failed shutdown needs no handling.
            _byeSeen = true;
            try
            {
                _socket!.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
            }
        }
        else if (now <= _run.RecordEnd)
        {
            _run.Record(now - sentAt);
            LastReplyAt = now;
        }

        return true;
    }

    // ERROR SHUTTING_DOWN or ERROR IDLE_TIMEOUT: the server answered every line it read and closes. Noted in
    // _closingNotice (the framing stops there, and the connection is replaced). Only off the hot path: on a mismatch.
    private bool IsClosingNotice(ReadOnlySpan<byte> reply)
    {
        _closingNotice = !_workload.Redis
            && (reply.SequenceEqual(ErrorCodes.ReplyLine(ErrorCode.ShuttingDown)[..^1]) || reply.SequenceEqual(ErrorCodes.ReplyLine(ErrorCode.IdleTimeout)[..^1]));
        return _closingNotice;
    }

    // The sink of the framed replies: this connection, at the time of the read. A struct, so the framing loops are
    // compiled for it and call OnReply directly.
    private readonly struct Answers(Connection connection, long now) : IReplySink
    {
        public bool Take(ReadOnlySpan<byte> reply) => connection.OnReply(reply, now);
    }
}
