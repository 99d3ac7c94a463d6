using System.Buffers;
using System.Net.Sockets;
using TinyServer.Interop;
using TinyServer.Protocol;

namespace TinyServer.LoadGen;

/// <summary>Where a connection is in its life.</summary>
internal enum ConnectionState
{
    /// <summary>Waiting in the dial queue (at the start, or between sessions).</summary>
    Idle,

    /// <summary>The TCP connect is under way.</summary>
    Connecting,

    /// <summary>Connected; waiting for the banner.</summary>
    Greeting,

    /// <summary>Sending requests and reading replies.</summary>
    Open,

    /// <summary>Its share of the -n requests is answered.</summary>
    Done,

    /// <summary>Broke (counted in the errors) and is not replaced.</summary>
    Dead,
}

/// <summary>
/// One connection of the load, driven by the event loop: a non-blocking socket with buffers allocated once. Replies
/// are framed where they lie in the receive buffer, checked byte for byte and timed; the next requests are copied
/// from precomputed bytes and sent in one write. Nothing is allocated per request.
/// </summary>
internal sealed class Connection
{
    private readonly int _index;
    private readonly RunState _run;
    private readonly Workload _workload;
    private readonly int _pipeline;
    private readonly byte[] _receive;
    private readonly byte[] _send;
    private readonly long[] _sentAt; // A ring of the requests in flight, oldest at _head: when each was (meant to be) sent,
    private readonly int[] _sentCommand; // and what it was (a command index, or Workload.QuitIndex).
    private Socket? _socket;
    private LineDecoder _decoder;
    private uint _generation;
    private bool _wantWrite;
    private int _filled;
    private int _sendOffset;
    private int _sendLength;
    private int _head;
    private int _inFlight;
    private int _schedule;
    private long _toSend;
    private long _sessionLeft;
    private bool _quitting;
    private bool _byeSeen;
    private long _dialStarted;
    private long _lastActivity;

    public Connection(int index, RunState run)
    {
        _index = index;
        _run = run;
        _workload = run.Workload;
        _pipeline = run.Options.Pipeline;
        _receive = new byte[_workload.ReceiveBufferSize(_pipeline)];
        _send = new byte[(_pipeline + 1) * _workload.LongestRequest];
        _sentAt = new long[_pipeline + 1];
        _sentCommand = new int[_pipeline + 1];
        _decoder = NewDecoder();
        _schedule = index % _workload.Schedule.Length;
    }

    public ConnectionState State { get; private set; }

    public bool Dialling => State is ConnectionState.Connecting or ConnectionState.Greeting;

    /// <summary>When the last reply came.</summary>
    public long LastReplyAt { get; private set; }

    /// <summary>At --rate, when the next request is due.</summary>
    public long NextDue { get; private set; }

    /// <summary>The epoll token of the current socket: the connection's index, and a generation so that events of a closed socket are told apart.</summary>
    public ulong Token => ((ulong)_generation << 32) | (uint)_index;

    public static int IndexOf(ulong token) => (int)(uint)token;

    public bool Owns(ulong token) => token == Token;

    /// <summary>Sets this connection's share of the requests and, at --rate, when its first one is due.</summary>
    public void Start(long requests, long firstDue)
    {
        _toSend = requests;
        NextDue = firstDue;
        if (requests == 0)
        {
            End(ConnectionState.Done); // -n is smaller than -c: nothing for this one to do.
        }
    }

    /// <summary>Starts a non-blocking connect; the banner (or failure) comes through <see cref="OnEvent"/>.</summary>
    public void Dial(long now)
    {
        _generation++;
        _run.Dialling++;
        State = ConnectionState.Connecting;
        _dialStarted = now;
        _filled = 0;
        _sendOffset = 0;
        _sendLength = 0;
        _wantWrite = false;
        _decoder.Dispose();
        _decoder = NewDecoder();
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

        if (_sendOffset > 0)
        {
            _send.AsSpan(_sendOffset, _sendLength - _sendOffset).CopyTo(_send);
            _sendLength -= _sendOffset;
            _sendOffset = 0;
        }

        bool wasIdle = _inFlight == 0;
        int length = _sendLength;
        while (_inFlight < _pipeline && _toSend > 0 && _sessionLeft > 0)
        {
            long sentAt = now;
            if (_run.RateInterval > 0)
            {
                if (NextDue > now)
                {
                    break;
                }

                sentAt = NextDue; // Latency counts from when the request was due (coordinated omission).
                NextDue += _run.RateInterval;
            }

            int command = _workload.Schedule[_schedule];
            _schedule = _schedule + 1 == _workload.Schedule.Length ? 0 : _schedule + 1;
            length += Enqueue(command, sentAt, _workload.Requests[command], length);
            _toSend--;
            _sessionLeft--;
        }

        if (_run.RateInterval > 0 && _inFlight < _pipeline && _toSend > 0 && _sessionLeft > 0)
        {
            _run.NextPace = Math.Min(_run.NextPace, NextDue); // Wake the loop when the next request is due.
        }

        if (_sessionLeft == 0)
        {
            length += Enqueue(Workload.QuitIndex, now, _workload.Quit, length);
            _quitting = true;
        }

        if (length == _sendLength)
        {
            return;
        }

        if (wasIdle)
        {
            _lastActivity = now;
        }

        _sendLength = length;
        Flush();
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

    /// <summary>An open connection waiting longer than --reply-timeout counts a timeout and closes.</summary>
    public void CloseIfTimedOut(long now)
    {
        if (State == ConnectionState.Open && (_inFlight > 0 || _quitting) && now - _lastActivity > _run.ReplyTimeout)
        {
            Fail(ErrorKind.Timeout);
        }
    }

    /// <summary>At the end of the connect phase (--connect-timeout): a connection not open by then has failed.</summary>
    public void GiveUpIfNotOpen()
    {
        if (Dialling)
        {
            DialFailed(State == ConnectionState.Connecting ? "not connected within --connect-timeout" : "no banner within --connect-timeout");
        }
        else if (State == ConnectionState.Idle)
        {
            _run.Errors.AddConnect("not dialled within --connect-timeout");
            End(ConnectionState.Dead);
        }
    }

    /// <summary>Closes the socket (epoll forgets it with it), at the end of a session or of the run.</summary>
    public void Close()
    {
        _socket?.Dispose();
        _socket = null;
    }

    private void OnConnected(long now)
    {
        if (_socket!.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error) is int error and not 0)
        {
            DialFailed(ErrorCounts.Describe((SocketError)error));
            return;
        }

        _run.Epoll.Change(_socket, Token, Epoll.Readable);
        if (_workload.Redis)
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
        int received = _socket!.Receive(_receive.AsSpan(_filled), SocketFlags.None, out SocketError error);
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

        _filled += received;
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(_receive, 0, _filled));
        LineStatus status = _decoder.TryReadLine(ref reader, isFinalBlock: false, telnetReplies: null, out ReadOnlySpan<byte> line);
        if (status == LineStatus.NeedMoreData)
        {
            return;
        }

        if (status != LineStatus.Line || !Workload.Banner.Matches(line))
        {
            DialFailed("wrong banner");
            return;
        }

        Compact((int)reader.Consumed);
        Opened(now);
    }

    private void Opened(long now)
    {
        _run.Dialling--;
        State = ConnectionState.Open;
        _head = 0;
        _inFlight = 0;
        _quitting = false;
        _byeSeen = false;
        _sessionLeft = _run.Options.RequestsPerSession ?? long.MaxValue;
        _lastActivity = now;
        Pump(now);
    }

    private void DialFailed(string reason)
    {
        _run.Dialling--;
        _run.Errors.AddConnect(reason);
        End(ConnectionState.Dead);
    }

    private void Receive(long now)
    {
        int received = _socket!.Receive(_receive.AsSpan(_filled), SocketFlags.None, out SocketError error);
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
        _filled += received;
        if (!TakeReplies(now))
        {
            Fail(ErrorKind.WrongReply);
        }
        else if (_toSend == 0 && _inFlight == 0 && !_quitting)
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
        int sent = _socket!.Send(_send.AsSpan(_sendOffset, _sendLength - _sendOffset), SocketFlags.None, out SocketError error);
        if (error is not (SocketError.Success or SocketError.WouldBlock))
        {
            Fail(ErrorKind.Closed);
            return;
        }

        _sendOffset += sent;
        bool pending = _sendOffset < _sendLength;
        if (!pending)
        {
            _sendOffset = 0;
            _sendLength = 0;
        }

        if (pending != _wantWrite)
        {
            _wantWrite = pending;
            _run.Epoll.Change(_socket, Token, pending ? Epoll.Readable | Epoll.Writable : Epoll.Readable);
        }
    }

    // False when the stream cannot be trusted any more: a reply too long to be one we expect, or one nobody asked for.
    private bool TakeReplies(long now)
    {
        bool inStep = _workload.Redis ? TakeRespReplies(now, out int consumed) : TakeLines(now, out consumed);
        Compact(consumed);
        return inStep;
    }

    private bool TakeLines(long now, out int consumed)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(_receive, 0, _filled));
        bool inStep = true;
        while (inStep)
        {
            LineStatus status = _decoder.TryReadLine(ref reader, isFinalBlock: false, telnetReplies: null, out ReadOnlySpan<byte> line);
            if (status == LineStatus.NeedMoreData)
            {
                break;
            }

            inStep = status == LineStatus.Line && OnReply(line, now);
        }

        consumed = (int)reader.Consumed;
        return inStep;
    }

    private bool TakeRespReplies(long now, out int consumed)
    {
        consumed = 0;
        while (true)
        {
            int length = Resp.FrameLength(_receive.AsSpan(consumed, _filled - consumed));
            if (length == 0)
            {
                return consumed > 0 || _filled < _receive.Length; // A full buffer holds no whole reply: too long.
            }

            if (length < 0 || !OnReply(_receive.AsSpan(consumed, length), now))
            {
                return false;
            }

            consumed += length;
        }
    }

    private bool OnReply(ReadOnlySpan<byte> reply, long now)
    {
        if (_inFlight == 0)
        {
            return false;
        }

        int slot = _head;
        _head = slot + 1 == _sentAt.Length ? 0 : slot + 1;
        _inFlight--;
        int command = _sentCommand[slot];
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
            _run.Record(now - _sentAt[slot]);
            LastReplyAt = now;
        }

        return true;
    }

    private int Enqueue(int command, long sentAt, byte[] request, int offset)
    {
        request.CopyTo(_send.AsSpan(offset));
        int slot = _head + _inFlight;
        slot = slot >= _sentAt.Length ? slot - _sentAt.Length : slot;
        _sentAt[slot] = sentAt;
        _sentCommand[slot] = command;
        _inFlight++;
        return request.Length;
    }

    private void Compact(int consumed)
    {
        _receive.AsSpan(consumed, _filled - consumed).CopyTo(_receive);
        _filled -= consumed;
    }

    // A reply longer than the receive buffer can hold is longer than any reply the load expects.
    private LineDecoder NewDecoder() => new(_receive.Length - 2);
}
