using System.Net.Sockets;
using TinyServer.Interop;

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
        _pacer.Start(firstDue);
        if (requests == 0)
        {
            End(ConnectionState.Done); // -n is smaller than -c: nothing for this one to do.
        }
    }

    public void OnEvent(uint events, long now)
    {
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
                    Flush();
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

        Flush();
    }

    /// <summary>An open connection waiting longer than --reply-timeout counts a timeout and closes.</summary>
    public void CloseIfTimedOut(long now)
    {
        if (State == ConnectionState.Open && (_inFlight.Count > 0 || _quitting) && now - _lastActivity > _run.ReplyTimeout)
        {
            Fail(ErrorKind.Timeout);
        }
    }

    /// <summary>Closes the socket (epoll forgets it with it), at the end of a session or of the run.</summary>
    public void Close()
    {
        _socket?.Dispose();
        _socket = null;
    }

    private void Receive(long now)
    {
        int received = _socket!.Receive(_receive.Free, SocketFlags.None, out SocketError error);
        if (error == SocketError.WouldBlock)
        {
            return;
        }

        if (error != SocketError.Success || received == 0)
        {
            if (_byeSeen && received == 0)
            {
                EndSession();
            }
            else
            {
                Fail(ErrorKind.Closed);
            }

            return;
        }

        _lastActivity = now;
        _receive.Received(received);
        if (!TakeReplies(now))
        {
            Fail(ErrorKind.WrongReply);
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

    // After QUIT, BYE and the server's close: dial again for the next session, unless the -n share is all sent.
    private void EndSession()
    {
        _run.Sessions++;
        if (_toSend == 0)
        {
            End(ConnectionState.Done);
            return;
        }

        Close();
        State = ConnectionState.Idle;
        _run.DialQueue.Enqueue(this);
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

    private void Flush()
    {
        int sent = _socket!.Send(_send.Unsent, SocketFlags.None, out SocketError error);
        if (error is not (SocketError.Success or SocketError.WouldBlock))
        {
            Fail(ErrorKind.Closed);
            return;
        }

        bool pending = _send.Sent(sent);
        if (pending != _wantWrite)
        {
            _wantWrite = pending;
            _run.Epoll.Change(_socket, Token, pending ? Epoll.Readable | Epoll.Writable : Epoll.Readable);
        }
    }

    // False when the stream cannot be trusted any more: a reply too long to be one we expect, or one nobody asked for.
    private bool TakeReplies(long now) => _receive.TakeReplies(_workload.Redis, new Answers(this, now));

    // Checks a reply against the oldest request in flight and records its latency.
    private bool OnReply(ReadOnlySpan<byte> reply, long now)
    {
        if (_inFlight.Count == 0)
        {
            return false;
        }

        _inFlight.TakeOldest(out int command, out long sentAt);
        if (!_workload.Matches(command, reply))
        {
            _run.Errors.Add(ErrorKind.WrongReply);
        }

        if (command == Workload.QuitIndex)
        {
            // Done sending: a server that lingers to read what a client still sends closes at once. Its close is
            // awaited (EndSession); a reset instead shows on the next read, so a failed shutdown needs no handling.
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

    // The sink of the framed replies: this connection, at the time of the read. A struct, so the framing loops are
    // compiled for it and call OnReply directly.
    private readonly struct Answers(Connection connection, long now) : IReplySink
    {
        public bool Take(ReadOnlySpan<byte> reply) => connection.OnReply(reply, now);
    }
}
