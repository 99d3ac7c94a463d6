using System.Collections;
using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http.Features;

namespace TinyServer.Transport.Epoll;

internal sealed partial class EpollConnection
{
    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _features.Revision;

    object? IFeatureCollection.this[Type key]
    {
        get => _features.Get(key);
        set => _features.Set(key, value);
    }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)_features.Get(typeof(TFeature));

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => _features.Set(typeof(TFeature), instance);

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator() => _features.ToList().GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _features.ToList().GetEnumerator();

    /// <summary>
    /// The connection's features, in the connection object itself, as Kestrel's own transports keep theirs in fields:
    /// Kestrel sets four on every connection and the transport one, and a <see cref="FeatureCollection"/> would spend
    /// a collection, a dictionary and its arrays (about 300 bytes) on them. The first <see cref="InlineCount"/> are
    /// searched in place; more (TLS, the PROXY protocol) go to a list. Not thread-safe, like <see cref="FeatureCollection"/>.
    /// </summary>
    private struct FeatureSlots
    {
        private const int InlineCount = 6;

        private Inline _inline;
        private List<KeyValuePair<Type, object>>? _more;

        public int Revision { get; private set; }

        public readonly object? Get(Type key)
        {
            ArgumentNullException.ThrowIfNull(key);
            for (int i = 0; i < InlineCount; i++)
            {
                if (ReferenceEquals(_inline[i].Key, key))
                {
                    return _inline[i].Value;
                }
            }

            if (_more is not null)
            {
                foreach (KeyValuePair<Type, object> feature in _more)
                {
                    if (ReferenceEquals(feature.Key, key))
                    {
                        return feature.Value;
                    }
                }
            }

            return null;
        }

        /// <summary>Sets, replaces, or with null removes the feature <paramref name="key"/>.</summary>
        public void Set(Type key, object? value)
        {
            ArgumentNullException.ThrowIfNull(key);
            int free = -1;
            for (int i = 0; i < InlineCount; i++)
            {
                if (ReferenceEquals(_inline[i].Key, key))
                {
                    _inline[i] = value is null ? default : new(key, value);
                    Revision++;
                    return;
                }

                if (free < 0 && _inline[i].Key is null)
                {
                    free = i;
                }
            }

            for (int i = 0; _more is not null && i < _more.Count; i++)
            {
                if (ReferenceEquals(_more[i].Key, key))
                {
                    if (value is null)
                    {
                        _more.RemoveAt(i);
                    }
                    else
                    {
                        _more[i] = new(key, value);
                    }

                    Revision++;
                    return;
                }
            }

            if (value is null)
            {
                return; // Nothing to remove: the revision stays.
            }

            if (free >= 0)
            {
                _inline[free] = new(key, value);
            }
            else
            {
                (_more ??= []).Add(new(key, value));
            }

            Revision++;
        }

        public readonly List<KeyValuePair<Type, object>> ToList()
        {
            var features = new List<KeyValuePair<Type, object>>();
            for (int i = 0; i < InlineCount; i++)
            {
                if (_inline[i].Key is not null)
                {
                    features.Add(_inline[i]);
                }
            }

            if (_more is not null)
            {
                features.AddRange(_more);
            }

            return features;
        }

        [InlineArray(InlineCount)]
        private struct Inline
        {
            private KeyValuePair<Type, object> _first;
        }
    }
}
