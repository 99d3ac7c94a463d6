using System.Diagnostics;
using TinyServer.Tests.Infrastructure;

namespace TinyServer.Tests.Operations;

/// <summary>
/// tests/install-peers.sh (the install step of tests/run.sh) while another package manager holds one of apt's locks.
/// Real apt-get, pointed by APT_CONFIG at a sandbox: its own dpkg status with one package installed, no sources, so
/// nothing is downloaded and the machine's packages are untouched; no root needed (a sudo that only runs its command
/// stands in for the real one). The lock is taken here the way apt-get and dpkg take it (fcntl) and held a while.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
[Trait("Tier", "process")]
public class InstallScriptTests
{
    private static readonly TimeSpan Held = TimeSpan.FromSeconds(3);

    [Theory]
    [InlineData("dpkg/lock-frontend")] // dpkg's locks: apt-get install waits for them (DPkg::Lock::Timeout).
    [InlineData("dpkg/lock")]
    [InlineData("lists/lock")] // The package lists': apt-get update fails at once on it, the script retries.
    [InlineData("cache/archives/lock")] // The downloads': apt-get install fails at once on it, the script retries.
    public async Task The_install_waits_for_a_held_lock_instead_of_failing(string lockFile)
    {
        using var sandbox = new AptSandbox();
        Task<ProcessResult> install;
        using (FileStream held = sandbox.Hold(lockFile))
        {
            install = sandbox.InstallAsync(AptSandbox.InstalledPackage);
            await Task.Delay(Held);
            if (install.IsCompleted)
            {
                Assert.Fail("the install ended while the lock was held: " + Describe(await install));
            }
        }

        ProcessResult result = await install; // Bounded: ProcessRunner kills it after Timeouts.Process.
        Assert.True(result.ExitCode == 0, "the install failed after the lock was released: " + Describe(result));
        Assert.Equal(["installing " + AptSandbox.InstalledPackage], result.OutputLines.Where(l => l.StartsWith("installing", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Any_other_failure_ends_the_install_at_once()
    {
        // Retrying covers the locks only: an unknown package fails the first time, with apt-get's message.
        using var sandbox = new AptSandbox();
        var clock = Stopwatch.StartNew();
        ProcessResult result = await sandbox.InstallAsync("tinyserver-no-such-package");
        Assert.Equal(100, result.ExitCode);
        Assert.Contains("Unable to locate package tinyserver-no-such-package", result.StandardError, StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"failed after {clock.Elapsed}");
    }

    [Fact]
    public async Task Installed_packages_are_left_alone()
    {
        using var sandbox = new AptSandbox();
        using FileStream held = sandbox.Hold("dpkg/lock-frontend"); // apt-get would wait for it: it must not run.
        ProcessResult result = await sandbox.InstallAsync("bash");
        Assert.Equal((0, "", ""), (result.ExitCode, result.StandardOutput, result.StandardError));
    }

    private static string Describe(ProcessResult result) => $"exit {result.ExitCode}\n{result.StandardOutput}\n{result.StandardError}";

    /// <summary>A directory tree that apt-get takes for the machine's, through APT_CONFIG.</summary>
    private sealed class AptSandbox : IDisposable
    {
        /// <summary>Installed in the sandbox's dpkg status only (the script asks the machine's dpkg first: missing there).</summary>
        public const string InstalledPackage = "tinyserver-sandbox-probe";

        private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("tinyserver-apt-");

        public AptSandbox()
        {
            foreach (string directory in new[] { "etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "lists/partial", "cache/archives/partial", "dpkg", "log", "bin" })
            {
                Directory.CreateDirectory(Path(directory));
            }

            File.WriteAllText(Path("etc/sources.list"), "");
            File.WriteAllText(Path("dpkg/status"), $"""
                Package: {InstalledPackage}
                Status: install ok installed
                Priority: optional
                Section: misc
                Installed-Size: 1
                Maintainer: TinyServer tests <tests@localhost>
                Architecture: all
                Version: 1.0
                Description: installed only in a test's apt sandbox

                """);
            File.WriteAllText(Path("apt.conf"), $"""
                Dir::Etc "{Path("etc")}/";
                Dir::Etc::parts "apt.conf.d";
                Dir::State "{_root.FullName}/";
                Dir::State::lists "{Path("lists")}/";
                Dir::State::status "{Path("dpkg/status")}";
                Dir::Cache "{Path("cache")}/";
                Dir::Cache::archives "{Path("cache/archives")}/";
                Dir::Log "{Path("log")}/";

                """);
            File.WriteAllText(Path("bin/sudo"), "#!/bin/sh\nexec \"$@\"\n");
            File.SetUnixFileMode(Path("bin/sudo"), UnixFileMode.UserRead | UnixFileMode.UserExecute);
        }

        /// <summary>A write lock on the whole file, as apt-get's and dpkg's (fcntl; released when disposed).</summary>
        public FileStream Hold(string lockFile)
        {
            var stream = new FileStream(Path(lockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.ReadWrite);
            stream.Lock(0, 0);
            return stream;
        }

        public Task<ProcessResult> InstallAsync(string package) => ProcessRunner.RunAsync(
            "bash",
            [System.IO.Path.Combine(BuiltPrograms.RepositoryRoot, "tests", "install-peers.sh"), package],
            environment: new Dictionary<string, string>
            {
                ["APT_CONFIG"] = Path("apt.conf"),
                ["PATH"] = Path("bin") + ":" + Environment.GetEnvironmentVariable("PATH"),
            });

        public void Dispose() => _root.Delete(recursive: true);

        private string Path(string relative) => System.IO.Path.Combine(_root.FullName, relative);
    }
}
